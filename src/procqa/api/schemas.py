"""The HTTP edge's records: pydantic models for requests, responses and errors, and the
examples the OpenAPI document shows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from procqa.documents import Hit

EXAMPLE_REF = {
    "id": "cpt-22849-reinsertion-of-spinal-fixation-device",
    "title": "Reinsertion of spinal fixation device",
    "code": "22849",
    "code_system": "CPT",
}
EXAMPLE_SOURCE = "corpus/cpt-22849-reinsertion-of-spinal-fixation-device.txt"
EXAMPLE_RECOVERY = (
    "Post-Procedure Care: Pain management with medication, wound care, and instructions for physical activity "
    "restrictions.\nRecovery Time: Typically ranges from a few weeks to several months, depending on individual "
    "health factors and the extent of the procedure."
)
EXAMPLE_ANSWER = EXAMPLE_RECOVERY.split("\n")[1]
EXAMPLE_START = EXAMPLE_RECOVERY.index(EXAMPLE_ANSWER)
EXAMPLES: dict[str, Any] = {
    "search": {
        "query": "How long is recovery after spinal fixation device reinsertion?",
        "took_ms": 12.4,
        "covered": True,
        "reason": None,
        "results": [
            {
                "rank": 1,
                "score": 4.9093,
                "confidence": 0.93,
                "procedure": EXAMPLE_REF,
                "section": "Recovery",
                "section_kind": "Recovery",
                "text": EXAMPLE_RECOVERY,
                "answer": EXAMPLE_ANSWER,
                "answer_start": EXAMPLE_START,
                "answer_end": EXAMPLE_START + len(EXAMPLE_ANSWER),
                "source": EXAMPLE_SOURCE,
                "lines": [38, 40],
            }
        ],
    },
    "procedures": {"data": [EXAMPLE_REF, {"id": "asthma", "title": "Asthma", "code": None, "code_system": None}]},
    "procedure": {
        **EXAMPLE_REF,
        "sections": [
            {
                "name": "Summary",
                "kind": "Summary",
                "text": "Reinsertion of a spinal fixation device is a surgical procedure where previously placed "
                "hardware, such as screws, rods, or plates, is reinstalled to stabilize the spine.",
                "source": EXAMPLE_SOURCE,
                "lines": [6, 7],
            },
            {
                "name": "Recovery",
                "kind": "Recovery",
                "text": EXAMPLE_RECOVERY,
                "source": EXAMPLE_SOURCE,
                "lines": [38, 40],
            },
        ],
    },
    "health": {"status": "ok"},
    "ready": {
        "status": "ready",
        "version": "20250101T120000000000Z",
        "procedures": 40,
        "passages": 612,
        "sections": ["Purpose", "Recovery", "Risks and Complications", "Summary"],
        "manifest": {"model": "sentence-transformers/all-MiniLM-L6-v2", "dimension": 384, "passages": 612},
    },
    "reload": {"version": "20250102T090000000000Z", "previous": "20250101T120000000000Z", "changed": True},
}
EXAMPLES["procedures"]["count"] = len(EXAMPLES["procedures"]["data"])


class SearchRequest(BaseModel):
    """A question, how many passages to return, and optional filters."""

    query: str = Field(
        description="The question: at most PROCQA_MAX_QUERY_CHARS (default 1000) characters, not only spaces.",
        examples=["How long is recovery after spinal fixation device reinsertion?"],
    )
    k: int = Field(10, description="How many passages to return, 1 to PROCQA_MAX_K (default 100).")
    code: str | None = Field(None, description="Only passages of the procedure with this code.", examples=["22849"])
    section: str | None = Field(
        None,
        description="Only passages under this heading as written, or of this kind of section, in any case.",
        examples=["Recovery"],
    )


class ProcedureRef(BaseModel):
    id: str = Field(
        description="Unique in the collection, from the document's path (and line, in JSON Lines).",
        examples=["cpt-22849-reinsertion-of-spinal-fixation-device"],
    )
    title: str = Field(examples=["Reinsertion of spinal fixation device"])
    code: str | None = Field(examples=["22849"])
    code_system: str | None = Field(examples=["CPT"])


class PassagePublic(BaseModel):
    """One ranked passage, its best answering unit, and where it comes from."""

    rank: int
    score: float = Field(description="The fused ranking score: comparable within one response only.")
    confidence: float = Field(
        ge=0.0,
        le=1.0,
        description="Calibrated probability that this passage answers the question, measured on "
        "collections the model was not fitted on.",
    )
    procedure: ProcedureRef
    section: str = Field(description="The section's heading as the document writes it.", examples=["Going home"])
    section_kind: str | None = Field(
        description="What the heading is a variant of, where procqa knows: a canonical section or a common "
        "health-page heading; null otherwise.",
        examples=["Recovery"],
    )
    text: str
    answer: str
    answer_start: int = Field(description="Offset of `answer` in `text`.")
    answer_end: int
    source: str = Field(examples=["corpus/cpt-22849-reinsertion-of-spinal-fixation-device.txt"])
    lines: tuple[int, int] = Field(description="First and last line of the section in `source`.")

    @classmethod
    def from_hit(cls, hit: Hit, rank: int, confidence: float) -> PassagePublic:
        """A hit as the API shows it, at its rank, with its confidence."""
        p = hit.passage
        return cls(
            rank=rank,
            score=round(hit.score, 4),
            confidence=confidence,
            procedure=ProcedureRef(id=p.procedure_id, title=p.title, code=p.code, code_system=p.code_system),
            section=p.heading,
            section_kind=p.section_kind,
            text=p.text,
            answer=hit.answer,
            answer_start=hit.answer_start,
            answer_end=hit.answer_end,
            source=p.source,
            lines=(p.line_start, p.line_end),
        )


class SearchResponse(BaseModel):
    query: str
    took_ms: float
    covered: bool = Field(
        description="Whether some page of this collection answers the question. When false, `results` "
        "are the closest pages, to show under a clear notice."
    )
    reason: str | None = Field(
        description="Why the question is not covered (null when it is).",
        examples=["no page about lasik here", "the question is outside this collection"],
    )
    results: list[PassagePublic]


class SectionPublic(BaseModel):
    name: str = Field(description="The heading as the document writes it.", examples=["Going home"])
    kind: str | None = Field(description="What the heading is a variant of; null when unknown.", examples=["Recovery"])
    text: str
    source: str
    lines: tuple[int, int]


class ProcedurePublic(ProcedureRef):
    sections: list[SectionPublic]


class ProceduresPublic(BaseModel):
    data: list[ProcedureRef]
    count: int


class HealthPublic(BaseModel):
    status: str = "ok"


class ReadyPublic(BaseModel):
    status: str = "ready"
    version: str
    procedures: int
    passages: int
    sections: list[str]
    manifest: dict[str, Any] = Field(description="The served version's manifest, less checksums and intent texts.")


class ReloadPublic(BaseModel):
    version: str
    previous: str | None
    changed: bool


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_query"])
    message: str = Field(examples=["query must contain at least one non-space character"])
    field: str | None = Field(None, examples=["q"])


class ErrorPublic(BaseModel):
    error: ErrorDetail


def error_responses(**described: str) -> dict[int | str, dict[str, Any]]:
    return {int(status[1:]): {"model": ErrorPublic, "description": text} for status, text in described.items()}


def ok_response(example: str, **more_content: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"application/json": {"example": EXAMPLES[example]}, **more_content}}}
