"""The flywheel: capture a repetitive task's traffic under policy, train a small LoRA
adapter on it, evaluate it beside the teacher, promote it safely, and prove where
it came from. See docs/flywheel.md.

This package's ``__init__`` imports nothing: the config schema imports
:mod:`hybridgate.distill.config`, and training pulls in torch only when used.
"""
