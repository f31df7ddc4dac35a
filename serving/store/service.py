"""The store's service layer: every read and write the API makes, with no HTTP in sight.

Each write is one transaction (`write_transaction`): its rows and its audit-log entries are
committed together, or, if anything raises, nothing is. Functions take a `Session` and return
table rows (readable after commit) or small frozen dataclasses.

    log_routing(s, request_id, [RoutedText(text, routing.to_dict(), complaint_id="A1")], actor=key)
    item = claim_next(s, "officer-7", QueueFilter(department="市场监督管理局"))
    submit_response(s, item.id, "officer-7", Answer("correct", department="市交通运输局"), taxonomy)
    submitted_labels(s)  # what retraining learns from: the latest submitted answer per complaint

Claims are exclusive on every backend: a claim is a conditional UPDATE (`… WHERE status = 'open'
OR the claim expired`) whose row count says whether it won, run on a row the transaction has
locked first — SQLite: BEGIN IMMEDIATE serialises writers; PostgreSQL: SELECT … FOR UPDATE, and
SKIP LOCKED when taking the next item, so officers never wait on each other's rows.

One module per concept — queue.py (the routing log, the review queue and its claims),
responses.py (officers' answers and the labels they become), complaints.py (registration),
issues.py (hot issues: joining one, merge, split), cases.py (what follows routing: assigned,
replied, closed, reopened; due and overdue), warnings.py (early warnings, acknowledged),
replies.py (the latest replies per complaint and per hot issue, for instant replies), audit.py
(the audit log) — and this module, the one import callers use:
`from serving.store import service`.
"""

from __future__ import annotations

from serving.store.audit import (
    audit_trail,
)
from serving.store.cases import (
    Case,
    NewEvent,
    Posted,
    cases_of,
    get_case,
    post_event,
)
from serving.store.complaints import (
    ComplaintChanges,
    NewComplaint,
    Registration,
    complaint_changes,
    get_complaint,
    last_change,
    register_complaints,
    register_routed,
    registered_complaints,
    remove_complaint,
)
from serving.store.issues import (
    get_issue,
    issues_opened,
    merge_issues,
    reports_between,
    split_issue,
)
from serving.store.queue import (
    CLAIM_TTL,
    MAX_PAGE,
    QueueFilter,
    QueuePage,
    RoutedText,
    claim,
    claim_next,
    enqueue_review,
    get_review_item,
    list_queue,
    log_routing,
)
from serving.store.replies import (
    Replies,
    StoredReply,
    find_replies,
    issue_replies,
    latest_replies,
)
from serving.store.responses import (
    REVIEW_SOURCE,
    Answer,
    Label,
    discard,
    feedback,
    resolve_answer,
    responses_for,
    save_draft,
    submit_response,
    submitted_labels,
)
from serving.store.warnings import (
    NewWarning,
    acknowledge,
    add_warnings,
    list_warnings,
)

__all__ = [
    "Answer",
    "CLAIM_TTL",
    "Case",
    "ComplaintChanges",
    "Label",
    "MAX_PAGE",
    "NewComplaint",
    "NewEvent",
    "NewWarning",
    "Posted",
    "QueueFilter",
    "QueuePage",
    "REVIEW_SOURCE",
    "Registration",
    "Replies",
    "RoutedText",
    "StoredReply",
    "acknowledge",
    "add_warnings",
    "audit_trail",
    "cases_of",
    "claim",
    "claim_next",
    "complaint_changes",
    "discard",
    "enqueue_review",
    "feedback",
    "find_replies",
    "get_case",
    "get_complaint",
    "get_issue",
    "get_review_item",
    "issue_replies",
    "issues_opened",
    "latest_replies",
    "last_change",
    "list_queue",
    "list_warnings",
    "log_routing",
    "merge_issues",
    "post_event",
    "register_complaints",
    "register_routed",
    "registered_complaints",
    "remove_complaint",
    "reports_between",
    "resolve_answer",
    "responses_for",
    "save_draft",
    "split_issue",
    "submit_response",
    "submitted_labels",
]
