"""Language model providers: implementations of the domain's `LLMProvider` port."""

from __future__ import annotations

from app.core.settings import Settings
from app.domain.language_model import LLMProvider


def build_provider(settings: Settings) -> LLMProvider:
    """The provider the settings name: `simulated` (the local default) or `openai`."""
    if settings.llm_provider == "openai":
        from app.llm.openai_chat import OpenAIChatProvider

        return OpenAIChatProvider(
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
            model=settings.llm_model,
            max_output_tokens=settings.llm_max_output_tokens,
            connect_timeout_s=settings.llm_connect_timeout_s,
            read_timeout_s=settings.llm_read_timeout_s,
            max_retries=settings.llm_max_retries,
        )
    from app.llm.simulated import SimulatedProvider

    return SimulatedProvider(tokens=settings.simulated_tokens, delay_ms=settings.simulated_delay_ms)
