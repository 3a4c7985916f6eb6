"""kubernetes/ from the mixin, the dashboards and alertmanager/alertmanager.yml (used by generate.py).

The Prometheus Operator objects (PrometheusRule, ServiceMonitor, PodMonitor) come from
mixin/kubernetes/kubernetes.libsonnet. Written here, because their sources are not Jsonnet:

- the dashboard ConfigMaps: the bytes of grafana/dashboards/*.json as rendered;
- the AlertmanagerConfig: alertmanager/alertmanager.yml's route, receivers and inhibition,
  converted field by field, keys read from a Secret by reference, and the notification
  templates of alertmanager/templates/*.tmpl inlined (an AlertmanagerConfig cannot load
  template files);
- the kustomizations: kubernetes/ (ServiceMonitor) and kubernetes/podmonitor/ (PodMonitor),
  both on kubernetes/base/ (rules, AlertmanagerConfig, dashboards).
"""

from __future__ import annotations

import re
from typing import Any, Callable

KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"

# --- Go templates ------------------------------------------------------------------------

_ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)
_OPENERS = ("if", "range", "with", "define", "block")


def _keyword(action: str) -> str:
    words = action.strip().split(None, 1)
    return words[0] if words else ""


def parse_defines(text: str) -> dict[str, str]:
    """``{{ define "name" }}body{{ end }}`` blocks of a template file, name -> body."""
    if re.search(r"\{\{-|-\}\}", text):
        raise ValueError("trim markers ({{- -}}) are not supported by the inliner")
    defines: dict[str, str] = {}
    stack: list[tuple[str, str | None, int]] = []  # (keyword, define name, body start)
    for m in _ACTION.finditer(text):
        action = m.group(1)
        word = _keyword(action)
        if action.strip().startswith("/*"):
            continue
        if word in _OPENERS:
            name = re.match(r'\s*define\s+"([^"]+)"\s*$', action)
            stack.append((word, name.group(1) if name else None, m.end()))
        elif word == "end":
            opener, name, start = stack.pop()
            if opener == "define":
                defines[name] = text[start:m.start()]
    if stack:
        raise ValueError(f"unclosed template blocks: {[s[0] for s in stack]}")
    return defines


def inline_templates(text: str, defines: dict[str, str], depth: int = 0) -> str:
    """Replace each ``{{ template "name" . }}`` by the define's body, recursively.

    Only calls passing the unchanged dot are inlined (outside range/with, where the dot
    is the notification data), so the inlined text renders exactly as the call did."""
    if depth > 10:
        raise ValueError("templates nest too deep")
    out, pos, stack = [], 0, []
    for m in _ACTION.finditer(text):
        action = m.group(1)
        word = _keyword(action)
        if word in _OPENERS:
            stack.append(word)
        elif word == "end":
            stack.pop()
        elif word == "template":
            call = re.fullmatch(r'\s*template\s+"([^"]+)"\s+\.\s*', action)
            if call is not None and call.group(1).startswith("__") and call.group(1) not in defines:
                continue  # Alertmanager's built-in templates (default.tmpl) are always loaded
            if call is None or any(w in ("range", "with") for w in stack):
                raise ValueError(f"cannot inline {m.group(0)!r}: only {{{{ template \"x\" . }}}} with the root dot")
            out.append(text[pos:m.start()])
            out.append(inline_templates(defines[call.group(1)], defines, depth + 1))
            pos = m.end()
    out.append(text[pos:])
    return "".join(out)


# --- alertmanager.yml -> AlertmanagerConfig ---------------------------------------------------

_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')


def matcher(text: str) -> dict[str, str]:
    """'severity="critical"' -> {name, value, matchType} (the CR's matcher object)."""
    m = _MATCHER.match(text)
    if m is None:
        raise ValueError(f"unsupported matcher {text!r}")
    return {"name": m.group(1), "value": m.group(3), "matchType": m.group(2)}


def _convert(node: dict, fields: dict[str, tuple[str, Callable[[Any], Any]]], where: str) -> dict:
    """Copy the keys of ``node`` under their CR names; an unknown key is an error, so a
    change to alertmanager.yml the converter does not know fails the render."""
    out = {}
    for key, value in node.items():
        if key not in fields:
            raise ValueError(f"{where}: alertmanager.yml key {key!r} has no AlertmanagerConfig mapping")
        name, fn = fields[key]
        out[name] = fn(value)
    return out


def alertmanager_config_spec(am: dict, templates: str, secret: dict) -> dict:
    """The AlertmanagerConfig spec equivalent to alertmanager.yml (route, receivers, inhibition)."""
    defines = parse_defines(templates)

    def text(value: str) -> str:
        return inline_templates(value, defines)

    def same(value: Any) -> Any:
        return value

    def ref(key: str) -> Callable[[Any], dict]:
        # The file holds the secret on a plain host; on Kubernetes it is a Secret key.
        return lambda _path: {"name": secret["name"], "key": secret[key]}

    def route(node: dict) -> dict:
        return _convert(node, {
            "receiver": ("receiver", same),
            "group_by": ("groupBy", same),
            "group_wait": ("groupWait", same),
            "group_interval": ("groupInterval", same),
            "repeat_interval": ("repeatInterval", same),
            "continue": ("continue", same),
            "matchers": ("matchers", lambda ms: [matcher(x) for x in ms]),
            "routes": ("routes", lambda rs: [route(r) for r in rs]),
        }, "route")

    pagerduty = {
        "routing_key_file": ("routingKey", ref("pagerdutyRoutingKey")),
        "severity": ("severity", text),
        "description": ("description", text),
        "client": ("client", text),
        "client_url": ("clientURL", text),
        "component": ("component", text),
        "group": ("group", text),
        "class": ("class", text),
        "details": ("details", lambda d: [{"key": k, "value": text(v)} for k, v in d.items()]),
        "links": ("pagerDutyLinkConfigs", lambda ls: [{"href": text(x["href"]), "alt": x["text"]} for x in ls]),
    }
    slack = {
        "api_url_file": ("apiURL", ref("slackApiURL")),
        "channel": ("channel", same),
        "send_resolved": ("sendResolved", same),
        "color": ("color", text),
        "title": ("title", text),
        "title_link": ("titleLink", text),
        "text": ("text", text),
    }

    def receiver(node: dict) -> dict:
        return _convert(node, {
            "name": ("name", same),
            "pagerduty_configs": ("pagerdutyConfigs", lambda cs: [_convert(c, pagerduty, "pagerduty") for c in cs]),
            "slack_configs": ("slackConfigs", lambda cs: [_convert(c, slack, "slack") for c in cs]),
        }, "receiver")

    def inhibit(node: dict) -> dict:
        return _convert(node, {
            "source_matchers": ("sourceMatch", lambda ms: [matcher(x) for x in ms]),
            "target_matchers": ("targetMatch", lambda ms: [matcher(x) for x in ms]),
            "equal": ("equal", same),
        }, "inhibit_rules")

    # Not carried over: global.pagerduty_url points at the local capture receiver (on
    # Kubernetes pages go to PagerDuty's Events API, the default), resolve_timeout is an
    # Alertmanager-wide setting, and the template files are inlined above.
    unknown = set(am) - {"global", "templates", "route", "receivers", "inhibit_rules"}
    if unknown or set(am.get("global", {})) - {"resolve_timeout", "pagerduty_url"}:
        raise ValueError(f"alertmanager.yml keys without an AlertmanagerConfig mapping: {sorted(unknown)}")
    return {
        "route": route(am["route"]),
        "receivers": [receiver(r) for r in am["receivers"]],
        "inhibitRules": [inhibit(r) for r in am.get("inhibit_rules", [])],
    }


# --- objects and kustomizations ------------------------------------------------------------


def _metadata(k: dict, name: str, labels: dict | None = None, annotations: dict | None = None) -> dict:
    meta: dict[str, Any] = {"name": name, "namespace": k["namespace"], "labels": {**k["labels"], **(labels or {})}}
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def dashboard_configmap(k: dict, filename: str, content: str) -> dict:
    """One dashboard per ConfigMap (the sidecar writes each data key as a file)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(k, filename.removesuffix(".json") + "-dashboard", k["dashboardLabels"],
                              k["dashboardAnnotations"]),
        "data": {filename: content},
    }


def alertmanager_config(k: dict, am: dict, templates: str) -> dict:
    return {
        "apiVersion": "monitoring.coreos.com/v1alpha1",
        "kind": "AlertmanagerConfig",
        "metadata": _metadata(k, k["name"]),
        "spec": alertmanager_config_spec(am, templates, k["alertmanagerSecret"]),
    }


def render(k: dict, operator_objects: dict[str, dict], dashboards: dict[str, str], am: dict,
           templates: str) -> dict[str, dict]:
    """Path under kubernetes/ -> object (a Kubernetes object or a Kustomization)."""
    files: dict[str, dict] = {}
    base = {"prometheusrule.yaml": operator_objects["prometheusrule.yaml"],
            "alertmanagerconfig.yaml": alertmanager_config(k, am, templates)}
    for filename, content in sorted(dashboards.items()):
        base[f"dashboard-{filename.removesuffix('.json')}.yaml"] = dashboard_configmap(k, filename, content)
    files.update({f"base/{name}": obj for name, obj in base.items()})
    files["base/kustomization.yaml"] = {
        "apiVersion": KUSTOMIZE_API, "kind": "Kustomization", "namespace": k["namespace"], "resources": sorted(base)}
    # kubernetes/ scrapes with a ServiceMonitor, kubernetes/podmonitor/ with a PodMonitor;
    # never both (each pod would be scraped twice and every sum doubled).
    for variant, monitor in (("", "servicemonitor.yaml"), ("podmonitor/", "podmonitor.yaml")):
        files[variant + monitor] = operator_objects[monitor]
        files[variant + "kustomization.yaml"] = {
            "apiVersion": KUSTOMIZE_API, "kind": "Kustomization", "namespace": k["namespace"],
            "resources": ["../base" if variant else "base", monitor]}
    return files
