# Copyright: (c) meshfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Count module executions per host so that reruns can be held to a budget."""

from __future__ import annotations

DOCUMENTATION = r"""
name: run_budget
type: aggregate
short_description: Count module executions per host and flag hosts over a budget
version_added: 0.1.0
description:
  - Counts, per host, how many times a module was executed for that host during the run,
    and prints a summary table (host, modules, changed, failed) plus the run's wall time
    when the playbook finishes.
  - Every module execution costs a Python start on the managed node, which is slow on
    small boards such as Raspberry Pis. This callback makes that cost visible and lets CI
    enforce a per-host budget on no-op reruns.
  - "Counting unit: a task result for a task without a loop, or one loop item for a task
    with a loop (items are counted from the per-item events, the loop's summary result is
    not counted again)."
  - "C(modules) counts units that were ok, changed, failed or unreachable and whose action
    really runs a module (this includes C(gather_facts)/C(setup)). C(controller_actions)
    counts the same for actions that run only on the controller: C(set_fact), C(assert),
    C(debug), C(fail), C(meta) (including C(end_play) and C(noop)), C(include_tasks),
    C(include_role), C(import_tasks), C(import_role), C(include_vars), C(add_host),
    C(group_by), C(set_stats), C(pause) and C(validate_argument_spec), with or without
    the C(ansible.builtin.)/C(ansible.legacy.) prefix, and this collection's
    controller-only actions (C(meshfleet.mesh.cjdns_registry),
    C(meshfleet.mesh.gateway_allocations))."
  - "Each retry of a task using C(until) is one more execution and is counted too.
    Status polls of C(async) tasks and the duplicate C(v2_runner_on_async_ok)/C(_failed)
    events are not counted; the async task itself counts once."
  - "C(changed), C(failed) and C(skipped) count units of any action. Unreachable results
    count as C(failed), and so do failures ignored with C(ignore_errors). Skipped units are
    never counted as executions. A loop that produced no items (empty list, skipped or
    failed loop expression) counts as one skipped or failed unit and as no execution."
  - "Delegated tasks are counted for the inventory host the task ran for (the host of the
    result), not for the C(delegate_to) target that actually started the module."
  - Per host, the list of C([task name, action]) pairs that were counted as executions is
    kept for debugging and written to the JSON report.
requirements:
  - Enable it in C(callbacks_enabled), for example C(callbacks_enabled = meshfleet.mesh.run_budget)
    in the C([defaults]) section of C(ansible.cfg) or
    C(ANSIBLE_CALLBACKS_ENABLED=meshfleet.mesh.run_budget). It works alongside any stdout callback.
options:
  output_path:
    description:
      - When set, write the counts as JSON to this file at the end of the run.
      - C({playbook}) in the path is replaced by the playbook's file name without its
        extension, so runs of different playbooks (C(site.yml), C(validate.yml)) with one
        setting keep separate reports.
      - 'Structure: C({"wall_seconds": float, "hosts": {host: {"modules": n, "changed": n,
        "failed": n, "skipped": n, "controller_actions": n, "tasks": [[name, action], ...]}}}).'
    type: path
    ini:
      - section: callback_meshfleet_run_budget
        key: output_path
    env:
      - name: MESHFLEET_RUN_BUDGET_OUTPUT
  budget:
    description:
      - Maximum number of module executions per host.
      - Hosts with more executions than this are flagged with C(OVER BUDGET) in the table.
      - When unset, no host is flagged.
    type: int
    ini:
      - section: callback_meshfleet_run_budget
        key: budget
    env:
      - name: MESHFLEET_RUN_BUDGET
"""

import json
import os
import threading
import time

from ansible import constants as C
from ansible.plugins.callback import CallbackBase

CONTROLLER_ACTIONS = frozenset(
    (
        "add_host",
        "assert",
        "debug",
        "fail",
        "group_by",
        "import_role",
        "import_tasks",
        "include_role",
        "include_tasks",
        "include_vars",
        "meta",
        "pause",
        "set_fact",
        "set_stats",
        "validate_argument_spec",
    )
)
_BUILTIN_PREFIXES = ("ansible.builtin.", "ansible.legacy.")
# This collection's actions that never execute a module on the node.
COLLECTION_CONTROLLER_ACTIONS = frozenset(
    (
        "meshfleet.mesh.cjdns_registry",
        "meshfleet.mesh.gateway_allocations",
    )
)


def is_controller_action(action):
    """Return True when ``action`` runs on the controller only (no module execution)."""
    action = action or ""
    if action in COLLECTION_CONTROLLER_ACTIONS:
        return True
    for prefix in _BUILTIN_PREFIXES:
        if action.startswith(prefix):
            action = action[len(prefix) :]
            break
    return action in CONTROLLER_ACTIONS


def _new_host_counts():
    return {
        "modules": 0,
        "changed": 0,
        "failed": 0,
        "skipped": 0,
        "controller_actions": 0,
        "tasks": [],
    }


class CallbackModule(CallbackBase):
    """Aggregate callback counting module executions per host."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "meshfleet.mesh.run_budget"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None, options=None):
        super().__init__(display=display, options=options)
        self.hosts = {}
        # (host name, task uuid) -> number of item events seen for a loop task
        self._items_seen = {}
        # Item events arrive on the strategy's results thread, task results on the main one.
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._playbook = ""
        self.output_path = None
        self.budget = None

    def set_options(self, task_keys=None, var_options=None, direct=None):
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        self.output_path = self.get_option("output_path")
        self.budget = self.get_option("budget")

    # ----------------------------------------------------------------- counting

    def _count(self, result, outcome, executed=True):
        """Count one unit (a non-loop task result or one loop item) for the result's host.

        ``outcome`` is ``ok``, ``failed`` or ``skipped``.  ``executed`` is False for the
        summary of a loop that produced no item, which ran nothing.
        """
        with self._lock:
            counts = self.hosts.setdefault(result._host.get_name(), _new_host_counts())
            if outcome == "skipped":
                counts["skipped"] += 1
                return
            if outcome == "failed":
                counts["failed"] += 1
            if result._result.get("changed"):
                counts["changed"] += 1
            if executed:
                self._record_execution(counts, result._task)

    @staticmethod
    def _record_execution(counts, task):
        key = "controller_actions" if is_controller_action(task.action) else "modules"
        counts[key] += 1
        counts["tasks"].append([task.get_name(), task.action])

    @staticmethod
    def _task_key(result):
        return (result._host.get_name(), result._task._uuid)

    def _on_result(self, result, outcome):
        """Handle a task's final result; for loops it arrives after all item events."""
        task = result._task
        if task.loop is None and not task.loop_with:
            self._count(result, outcome)
            return
        with self._lock:
            items_seen = self._items_seen.pop(self._task_key(result), 0)
        if not items_seen:
            # Nothing was iterated: empty loop, or the loop expression failed / was skipped.
            # (Ansible also stays silent about the ok items of an add_host/group_by loop that
            # failed as a whole; those are controller actions, so ``modules`` is unaffected.)
            self._count(result, outcome, executed=False)

    def _on_item(self, result, outcome):
        with self._lock:
            key = self._task_key(result)
            self._items_seen[key] = self._items_seen.get(key, 0) + 1
        self._count(result, outcome)

    # ------------------------------------------------------------ task results

    def v2_runner_on_ok(self, result):
        self._on_result(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._on_result(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._on_result(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._on_result(result, "skipped")

    def v2_runner_item_on_ok(self, result):
        self._on_item(result, "ok")

    def v2_runner_item_on_failed(self, result):
        # Unreachable loop items are reported through this event as well.
        self._on_item(result, "failed")

    def v2_runner_item_on_skipped(self, result):
        self._on_item(result, "skipped")

    def v2_runner_retry(self, result):
        """A failed ``until`` attempt that will be retried: one more execution."""
        with self._lock:
            counts = self.hosts.setdefault(result._host.get_name(), _new_host_counts())
            self._record_execution(counts, result._task)

    def v2_runner_on_async_ok(self, result):
        """Not counted: the same result is delivered again by ``v2_runner_on_ok``."""

    def v2_runner_on_async_failed(self, result):
        """Not counted: the same result is delivered again by ``v2_runner_on_failed``."""

    def v2_runner_on_async_poll(self, result):
        """Not counted: how often ``async_status`` polls depends on timing, not on the play."""

    # ---------------------------------------------------------------- reporting

    def v2_playbook_on_start(self, playbook):
        self._start = time.monotonic()
        self._playbook = os.path.splitext(os.path.basename(playbook._file_name or ""))[0]

    def report(self, wall_seconds):
        """Return the JSON-serialisable report."""
        return {
            "wall_seconds": round(wall_seconds, 3),
            "hosts": {name: self.hosts[name] for name in sorted(self.hosts)},
        }

    def v2_playbook_on_stats(self, stats):
        wall_seconds = time.monotonic() - self._start
        budget_note = "" if self.budget is None else f", budget {self.budget} modules/host"
        self._display.display("")
        self._display.display(
            f"RUN BUDGET (wall time {wall_seconds:.1f}s{budget_note}) " + "*" * 30
        )
        self._display.display(f"{'host':<30} {'modules':>8} {'changed':>8} {'failed':>8}")
        for name in sorted(self.hosts):
            counts = self.hosts[name]
            line = f"{name:<30} {counts['modules']:>8} {counts['changed']:>8} {counts['failed']:>8}"
            if self.budget is not None and counts["modules"] > self.budget:
                self._display.display(f"{line}  OVER BUDGET", color=C.COLOR_ERROR)
            else:
                self._display.display(line)
        self._display.display("")

        if self.output_path:
            path = self.output_path.replace("{playbook}", self._playbook or "playbook")
            directory = os.path.dirname(path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(self.report(wall_seconds), handle, indent=2)
                handle.write("\n")
