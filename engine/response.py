"""Responses: pydantic models returned by handlers and saga steps."""

import pydantic


class Response(pydantic.BaseModel):
    """Base class of handler and step responses."""

    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)

    def to_dict(self) -> dict:
        """The response as a JSON-compatible dict."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, **kwargs: object) -> "Response":
        """Rebuild a response from ``to_dict`` output."""
        return cls.model_validate(kwargs)
