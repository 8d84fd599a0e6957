"""One interface over DiVA and its baselines; see `base.py` and `registry.py`."""
from diva.assistants.base import Reply, ReplyStream, Request, VoiceAssistant
from diva.assistants.registry import (ASSISTANTS, AssistantNotAvailable, AssistantSpec,
                                      available_assistants, load_assistant, register)

__all__ = ["ASSISTANTS", "AssistantNotAvailable", "AssistantSpec", "Reply", "ReplyStream", "Request",
           "VoiceAssistant", "available_assistants", "load_assistant", "register"]
