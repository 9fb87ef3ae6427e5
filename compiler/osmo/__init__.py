"""Offline OSMO workflow validator (compiler.osmo): render like OSMO, then check its schema and submit rules.

How a document is checked (facts from /work/shared/spec/osmo_rules.md):

1. Top level split on column-0 keys like OSMO's ``parse_workflow_spec``: only ``version``,
   ``workflow`` and ``default-values``, no duplicates, ``workflow`` required.
2. A spec is templated when its text holds ``{{``, ``{%``, ``{#`` or ``default-values``. Only the
   ``workflow:`` section is rendered (``version`` and ``default-values`` are dropped), with
   ``default-values`` then ``sets`` (see :func:`parse_sets` for OSMO's ``--set`` casting) in a
   sandboxed Jinja environment with ``StrictUndefined``. OSMO's own tokens (``{{output}}``,
   ``{{input:N}}``, ``{{input:task}}``, ``{{workflow_id}}``, ``{{uuid}}``, ``{{host:task}}``, no
   spaces) are swapped for variables whose value is the token, so they come back verbatim.
   Variables in ``allow_unset`` (default ``{"name"}``: the run name the compiler leaves for
   ``osmo workflow submit --set name=...``) render as their own name and yield a note.
3. ``localpath`` file entries are inlined the way the CLI does (relative to the workflow file).
4. The document is checked against ``schemas/osmo_workflow.schema.json`` (Draft 2020-12) and the
   Python rules below.
5. Second render: OSMO renders the posted text again with only ``--set`` values. Every string
   that reaches it (the rendered document, or the raw one when there are no ``default-values``,
   as in compiled output, plus inlined localpath files) may hold no ``{{``, ``{%`` or ``{#``
   except OSMO's tokens and ``{{ v }}`` for a variable ``v`` set at submit time.

Rules and how they are checked:

| rule (osmo_rules.md) | how |
|---|---|
| top-level keys, duplicates, ``workflow`` required | python (section split) |
| ``version: 2`` (int, numeric str, integral float; not bool) | python; warning only when templated |
| unknown keys in every model | schema (``additionalProperties: false``) |
| name pattern | schema; length <= 64 | python |
| task/group names unique after lower() and ``_``->``-`` | python |
| task not named ``osmo-ctrl`` | python |
| groups xor tasks, at least one; group has a task | python + schema (minItems) |
| exactly one lead per group of several tasks | python |
| number of tasks <= 100 (chart) error, > 20 (code default) warning | python |
| image, command required, command non-empty | schema |
| image parses as a docker reference | python |
| files: path+contents, unique, not under /osmo (but /osmo/data/output/) | schema + python |
| localpath: exists, UTF-8, not with contents | python (needs the file's directory) |
| inputs task/url, outputs url, regex compiles | schema + python |
| task input exists and is in an earlier group | python |
| data URL scheme and shape (s3, gs, swift>=3, tos>=2, azure>=2 parts) | python |
| checkpoint path/url/frequency | schema + python (url) |
| exitActions keys and code lists | python |
| downloadType only ``download`` | schema |
| cacheSize ``N%`` 0-100 or a quantity | python |
| kpis ``{index, path}`` | schema |
| credentials ``name -> str`` or ``name -> {ENV: key}`` | schema |
| resources: fields, int cpu/gpu, memory/storage units | schema; unit-less bytes | python warning |
| task.resource defined; ``default`` present | python |
| Helm default resource validations (cpu>0, memory>0, storage>0, gpu>=0) | python warning |
| volumeMounts ``src[:dst]`` form | python |
| all tasks use the same topology key set | python |
| labels: <= 16, key ``[prefix/]name``, name/value pattern | schema + python |
| timeouts: seconds or a duration | schema |
| Jinja StrictUndefined, syntax; render time <= 0.5 s | python (render); time is a warning |
| text survives the second render | python (lexical scan) |

Not checkable offline (need the OSMO service, its DB or the cluster):

| rule | needs |
|---|---|
| pool exists and is not in maintenance | service DB |
| resource without platform gets the pool's default_platform; platform exists in pool | pool config |
| pool/platform ``resource_validations`` against node ``K8_*`` values | pool config, cluster |
| privileged / hostNetwork allowed; volumeMount src in allowed/default mounts | platform config |
| topology keys exist in the pool's ``topology_keys`` | pool config |
| group GPUs <= pool GPU guarantee (NORMAL/HIGH priority) | pool config |
| ``wfid:task`` inputs exist and are finished | service DB |
| generic credential exists and holds every referenced key | service DB |
| registry accepts the image; digest pinning | registry |
| data credential for each bucket (unless ambient/disabled) | service DB |
| pool label policy (warn/enforce) | pool config |
| timeouts above the pool/workflow maximum are capped | pool config |
| ``max_num_tasks`` / ``max_name_length`` deployment overrides | service config (defaults used) |
| the sandbox's 100 MiB memory limit | service worker |
| Kubernetes ~1 MiB Secret limit per file | cluster (a warning is given above 1 MiB) |
"""

from __future__ import annotations

from compiler.osmo.document import has_errors, validate_file, validate_text
from compiler.osmo.findings import DOCKER_REF_RE, Finding
from compiler.osmo.render import cast_set_value, jinja_env, parse_sets
from compiler.osmo.rules import k8s_name
from compiler.osmo.schema_messages import schema

__all__ = [
    "DOCKER_REF_RE",
    "Finding",
    "cast_set_value",
    "has_errors",
    "jinja_env",
    "k8s_name",
    "parse_sets",
    "schema",
    "validate_file",
    "validate_text",
]
