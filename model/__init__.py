"""What a trained router is and how it answers. Imports neither torch nor training/serving."""
