"""Request and response bodies of the HTTP API, named by role (…In, …Public, …Request…).

One module per part of the API; every body is importable from here:

    intake.py      ComplaintIn, RouteRequest: what an intake system sends
    routing.py     RoutingPublic, DuplicatePublic, ReplyPublic, RouteResponse: where complaints go
    complaints.py  RegisterResponse, SimilarResponse, ComplaintRemovedPublic: /v1/complaints
    models.py      ModelPublic, TaxonomyPublic, SwapRequest, …: the served model and its swap
    cases.py       CaseEventIn, CasePublic: a complaint's case and the events that make it
    stats.py       StatsResponse, DepartmentStatsPublic, VolumePublic: /v1/stats
    warnings.py    WarningPublic, DetectIn, AcknowledgeIn: early warnings
    hot_issues.py  HotIssuesResponse, HotIssueDetailPublic, MergeIssuesIn, SplitIssueIn: 热点问题
    review.py      ReviewAnswerIn, FeedbackIn, ReviewItemPublic, …: the review queue, feedback
    health.py      HealthPublic, SimilarityIndexPublic: /healthz, /readyz
    errors.py      ErrorDetail, ErrorPublic: every error body
    validators.py  the checks the request bodies share (valid Unicode, storable text)
"""

from serving.schemas.cases import CaseEventIn, CaseEventPublic, CasePublic
from serving.schemas.complaints import ComplaintRemovedPublic, RegisterResponse, SimilarResponse
from serving.schemas.errors import ErrorDetail, ErrorPublic, RequestErrorDetail
from serving.schemas.health import HealthPublic, SimilarityIndexPublic
from serving.schemas.hot_issues import (
    HotIssueComplaintPublic,
    HotIssueDetailPublic,
    HotIssuePublic,
    HotIssuesResponse,
    MergeIssuesIn,
    SplitIssueIn,
)
from serving.schemas.intake import (
    EARLIEST_RECEIVED,
    EXAMPLE_TEXTS,
    LATEST_RECEIVED_AHEAD,
    MAX_CHANNEL_CHARS,
    MAX_ID_CHARS,
    MAX_LOCATION_CHARS,
    ComplaintIn,
    RouteRequest,
)
from serving.schemas.models import (
    BundleSummaryPublic,
    DutyEntryPublic,
    ModelListResponse,
    ModelPublic,
    SwapRequest,
    SwapResponse,
    TaxonomyPublic,
)
from serving.schemas.review import (
    MAX_LABEL_CHARS,
    MAX_NOTE_CHARS,
    MAX_PARTS,
    AuditEntryPublic,
    FeedbackIn,
    LabelText,
    ResponsePublic,
    ReviewAnswerIn,
    ReviewItemPublic,
    ReviewItemSummaryPublic,
    ReviewPartIn,
    ReviewQueuePublic,
    SimilarCasePublic,
    SuggestionPublic,
)
from serving.schemas.routing import (
    DuplicatePublic,
    DutyPublic,
    HeadPublic,
    LabelScore,
    ReplyPublic,
    ReplyQualityPublic,
    RouteResponse,
    RouteResult,
    RoutingPublic,
)
from serving.schemas.stats import DepartmentStatsPublic, StatsResponse, VolumePublic
from serving.schemas.warnings import (
    AcknowledgeIn,
    DetectIn,
    DetectResponse,
    WarningPublic,
    WarningsResponse,
)

__all__ = [
    "EARLIEST_RECEIVED", "EXAMPLE_TEXTS", "LATEST_RECEIVED_AHEAD", "MAX_CHANNEL_CHARS",
    "MAX_ID_CHARS", "MAX_LABEL_CHARS", "MAX_LOCATION_CHARS", "MAX_NOTE_CHARS", "MAX_PARTS",
    "AcknowledgeIn", "AuditEntryPublic", "BundleSummaryPublic", "CaseEventIn",
    "CaseEventPublic", "CasePublic", "ComplaintIn", "ComplaintRemovedPublic",
    "DepartmentStatsPublic", "DetectIn", "DetectResponse", "DuplicatePublic", "DutyEntryPublic",
    "DutyPublic", "ErrorDetail", "ErrorPublic", "FeedbackIn", "HeadPublic", "HealthPublic",
    "HotIssueComplaintPublic", "HotIssueDetailPublic", "HotIssuePublic", "HotIssuesResponse",
    "LabelScore", "LabelText", "MergeIssuesIn", "ModelListResponse", "ModelPublic",
    "RegisterResponse", "ReplyPublic", "ReplyQualityPublic", "RequestErrorDetail",
    "ResponsePublic", "ReviewAnswerIn",
    "ReviewItemPublic", "ReviewItemSummaryPublic", "ReviewPartIn", "ReviewQueuePublic",
    "RouteRequest", "RouteResponse", "RouteResult", "RoutingPublic", "SimilarCasePublic",
    "SimilarResponse", "SimilarityIndexPublic", "SplitIssueIn", "StatsResponse",
    "SuggestionPublic", "SwapRequest", "SwapResponse", "TaxonomyPublic", "VolumePublic",
    "WarningPublic", "WarningsResponse",
]
