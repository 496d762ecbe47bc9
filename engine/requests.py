"""Requests: pydantic models (commands and queries)."""

import pydantic


class Request(pydantic.BaseModel):
    """Base class of commands and queries."""

    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)

    def to_dict(self) -> dict:
        """The request as a JSON-compatible dict."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, **kwargs: object) -> "Request":
        """Rebuild a request from ``to_dict`` output."""
        return cls.model_validate(kwargs)
