"""Operations on the hosts: the Ansible playbooks run through ansible-runner."""

from usecases.ops.runner import Failure, Progress, Result, resolve_playbook, run_playbook

__all__ = ["Failure", "Progress", "Result", "resolve_playbook", "run_playbook"]
