"""How a router is made: data → fine-tuned encoder → calibrated, exported bundle."""
