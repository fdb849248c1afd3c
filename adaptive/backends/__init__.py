from .base import Backend, CallUsage, Completion, Generation, PromptPass, Request, SamplingParams

__all__ = ["Backend", "CallUsage", "Completion", "Generation", "PromptPass", "Request", "SamplingParams"]
