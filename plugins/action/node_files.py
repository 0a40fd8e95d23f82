# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of meshfleet.mesh.node_files: render each file's template (or read its
source) here, as ansible.builtin.template does, then run the module once on the node."""

from __future__ import annotations

import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template

try:  # the variables ansible.builtin.template adds (ansible_managed, template_path, ...)
    from ansible._internal._templating import _template_vars
except ImportError:  # pragma: no cover - older ansible-core
    _template_vars = None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("packages", "files", "units"))

    def _render(self, spec, task_vars):
        if spec.get("template"):
            source = self._find_needle("templates", spec["template"])
            data = trust_as_template(self._loader.get_text_file_contents(source))
            searchpath = list(task_vars.get("ansible_search_path", []))
            searchpath.extend([self._loader._basedir, os.path.dirname(source)])
            searchpath = [p for base in searchpath for p in (os.path.join(base, "templates"), base)]
            variables = task_vars.copy()
            variables.update(spec.get("vars") or {})
            if _template_vars is not None:
                variables.update(
                    _template_vars.generate_ansible_template_vars(
                        path=spec["template"],
                        fullpath=source,
                        dest_path=spec["dest"],
                        include_ansible_managed="ansible_managed" not in variables,
                    )
                )
            templar = self._templar.copy_with_new_env(
                searchpath=searchpath, available_variables=variables
            )
            rendered = templar.template(data, escape_backslashes=False)
            return "" if rendered is None else to_text(rendered)
        if spec.get("src"):
            source = self._find_needle("files", spec["src"])
            return to_text(self._loader.get_text_file_contents(source))
        return spec.get("content")

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        files = []
        try:
            for spec in self._task.args.get("files") or []:
                spec = dict(spec)
                if not spec.get("dest"):
                    return dict(result, failed=True, msg="every entry of files needs a dest")
                if spec.get("state", "present") == "present":
                    sources = [k for k in ("template", "src", "content") if spec.get(k) is not None]
                    if len(sources) != 1:
                        return dict(
                            result,
                            failed=True,
                            msg="%s needs exactly one of template, src or content (has %s)"
                            % (spec["dest"], ", ".join(sources) or "none"),
                        )
                    spec["content"] = self._render(spec, task_vars)
                for controller_only in ("template", "src", "vars"):
                    spec.pop(controller_only, None)
                files.append(spec)
        except AnsibleError as exc:
            return dict(result, failed=True, msg=to_text(exc))
        args = dict(
            packages=self._task.args.get("packages") or [],
            files=files,
            units=self._task.args.get("units") or [],
        )
        result.update(
            self._execute_module(
                module_name="meshfleet.mesh.node_files", module_args=args, task_vars=task_vars
            )
        )
        return result
