"""kubernetes/ without a cluster: the custom resources against the pinned Prometheus Operator
schemas (tests/k8s/validate.mjs), the ConfigMaps with kubernetes-validate, the rule groups
with promtool, the kustomizations with `kubectl kustomize`, and their equivalence with
prometheus/rules/, grafana/dashboards/ and alertmanager/alertmanager.yml."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from fast_rules import load_generate

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "kubernetes"
VALIDATOR = ROOT / "tests" / "k8s" / "validate.mjs"
KUBERNETES_VERSION = "1.32.0"  # oldest API the objects are checked against (kubectl here is 1.32)

generate = load_generate()


class _Loader(yaml.SafeLoader):
    """kustomize prints `matchType: =` unquoted, which YAML 1.1 reads as the `value` tag."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def objects() -> dict[str, dict]:
    """Every committed Kubernetes object, by path under kubernetes/ (kustomizations excluded)."""
    return {str(p.relative_to(K8S)): load(p) for p in sorted(K8S.rglob("*.yaml")) if p.name != "kustomization.yaml"}


def of_kind(kind: str) -> list[dict]:
    return [o for o in objects().values() if o["kind"] == kind]


def k8s_config() -> dict:
    return generate.evaluate_mixin((ROOT / "mixin" / "lib" / "contract.json").read_text())["kubernetesConfig"]


def mixin_config() -> dict:
    import _jsonnet

    return json.loads(_jsonnet.evaluate_snippet(
        "cfg", "(import 'mixin.libsonnet')._config { contract:: null }", jpathdir=[str(ROOT / "mixin")]))


def validate_custom_resources(objs: list[dict]) -> list[dict]:
    node = shutil.which("node")
    assert node, "node not found: run scripts/install-deps"
    assert (VALIDATOR.parent / "node_modules" / "@kubernetes-models" / "prometheus-operator").is_dir(), \
        "tests/k8s/node_modules missing: run scripts/install-deps (npm ci --prefix tests/k8s)"
    result = subprocess.run([node, str(VALIDATOR)], input=json.dumps(objs), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def kustomize(directory: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl not found: run scripts/install-deps"
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return list(yaml.load_all(result.stdout, Loader=_Loader))


# --- generated, and only generated ------------------------------------------------------------


def test_every_file_in_kubernetes_is_generated_and_drift_is_caught():
    files = generate.render()
    generated = {p for p in files if K8S in p.parents}
    on_disk = {p for p in K8S.rglob("*") if p.is_file()}
    assert generated == on_disk
    assert generate.drift(files) == []
    # A hand edit and a stray file both fail `generate.py --check`.
    edited = dict(files)
    rule_file = K8S / "base" / "prometheusrule.yaml"
    edited[rule_file] = files[rule_file].replace("for: 5m", "for: 6m", 1)
    assert [p for p in generate.drift(edited) if "kubernetes/base/prometheusrule.yaml (committed)" in p]
    fewer = {p: c for p, c in files.items() if p != K8S / "servicemonitor.yaml"}
    assert generate.drift(fewer) == ["kubernetes/servicemonitor.yaml: committed but no longer generated"]


# --- custom resources against the operator's schemas ----------------------------------------


def test_custom_resources_pass_the_prometheus_operator_schemas():
    crs = [o for o in objects().values() if o["apiVersion"].startswith("monitoring.coreos.com/")]
    assert sorted(o["kind"] for o in crs) == ["AlertmanagerConfig", "PodMonitor", "PrometheusRule", "ServiceMonitor"]
    results = validate_custom_resources(crs)
    assert [(r["kind"], r["errors"]) for r in results] == [(o["kind"], []) for o in crs]


def _mutate(kind: str, change) -> dict:
    obj = copy.deepcopy(of_kind(kind)[0])
    change(obj)
    return obj


BAD = {
    "misspelt endpoint field": (
        _mutate("ServiceMonitor", lambda o: o["spec"]["endpoints"][0].update(intervall="30s")),
        "'\"intervall\"' does not exist in type 'IEndpoint'"),
    "duration that is not a Prometheus duration": (
        _mutate("PrometheusRule", lambda o: o["spec"]["groups"][-1]["rules"][0].update({"for": "5 minutes"})),
        "data/spec/groups/%d/rules/0/for must match pattern" % (len(of_kind("PrometheusRule")[0]["spec"]["groups"]) - 1)),
    "rule group without a name": (
        _mutate("PrometheusRule", lambda o: o["spec"]["groups"][0].pop("name")),
        "data/spec/groups/0 must have required property name"),
    "PodMonitor endpoints under the ServiceMonitor's field name": (
        _mutate("PodMonitor", lambda o: o["spec"].update(endpoints=o["spec"].pop("podMetricsEndpoints"))),
        "'\"endpoints\"' does not exist in type 'IPodMonitorSpec'"),
    "a literal PagerDuty key instead of a Secret reference": (
        _mutate("AlertmanagerConfig", lambda o: o["spec"]["receivers"][0]["pagerdutyConfigs"][0].update(
            routingKey="0123456789abcdef0123456789abcdef")),
        "data/spec/receivers/0/pagerdutyConfigs/0/routingKey must be object"),
    "a nested route with an unknown match type": (
        _mutate("AlertmanagerConfig", lambda o: o["spec"]["route"]["routes"][0]["matchers"][0].update(matchType="==")),
        "spec.route.routes[0]: data/matchers/0/matchType must be equal to one of the allowed values"),
    "a nested route with a misspelt field": (
        _mutate("AlertmanagerConfig", lambda o: o["spec"]["route"]["routes"][0].update(recevier="slack")),
        "spec.route.routes[0]: Object literal may only specify known properties, and '\"recevier\"' does not exist"),
}


def test_the_validator_rejects_wrong_fields():
    """Each broken copy fails with its own error; the untouched objects stay valid."""
    names = list(BAD)
    results = validate_custom_resources([BAD[n][0] for n in names])
    for name, result in zip(names, results):
        expected = BAD[name][1]
        assert any(expected in e for e in result["errors"]), (name, result["errors"])


def test_core_objects_pass_kubernetes_validate():
    configmaps = of_kind("ConfigMap")
    assert len(configmaps) == 3
    for cm in configmaps:
        kubernetes_validate.validate(cm, KUBERNETES_VERSION, strict=True)
    broken = copy.deepcopy(configmaps[0])
    broken["metadata"]["label"] = broken["metadata"].pop("labels")  # misspelt: strict mode rejects it
    with pytest.raises(kubernetes_validate.ValidationError, match="label"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    broken = copy.deepcopy(configmaps[0])
    broken["data"] = {"llm.json": {"not": "a string"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


# --- the same rules, dashboards and routing as the rest of the repository ---------------------


def test_prometheusrule_holds_the_prometheus_rules_groups(tmp_path):
    spec = of_kind("PrometheusRule")[0]["spec"]
    recording = load(ROOT / "prometheus" / "rules" / "llm-recording-rules.yaml")["groups"]
    alerting = load(ROOT / "prometheus" / "rules" / "llm-alerts.yaml")["groups"]
    assert spec["groups"][: len(recording)] == recording
    namespace = k8s_config()["namespace"]
    # The alerts are the same but for the namespace label the AlertmanagerConfig routes on.
    k8s_alerts = spec["groups"][len(recording):]
    assert len(k8s_alerts) == len(alerting)
    for ours, theirs in zip(k8s_alerts, alerting):
        assert [r["labels"].pop("namespace") for r in ours["rules"]] == [namespace] * len(ours["rules"])
        assert ours == theirs
    rule_file = tmp_path / "prometheusrule-groups.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": of_kind("PrometheusRule")[0]["spec"]["groups"]}))
    result = subprocess.run(["promtool", "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in spec['groups'])} rules found" in result.stdout


def test_dashboard_configmaps_carry_the_dashboards_byte_for_byte():
    cfg = k8s_config()
    found = {}
    for cm in of_kind("ConfigMap"):
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["labels"] == {**cfg["labels"], **cfg["dashboardLabels"]}
        assert cm["metadata"]["namespace"] == cfg["namespace"]
        (name, content), = cm["data"].items()
        found[name] = content
    dashboards = ROOT / "grafana" / "dashboards"
    assert found == {p.name: p.read_text() for p in dashboards.glob("*.json")}
    assert len(found) == 3


def test_monitors_scrape_the_app_under_the_job_the_rules_select():
    cfg, mixin = k8s_config(), mixin_config()
    job = mixin["jobName"]
    assert mixin["llmSelector"] == f'job="{job}"'
    recording = load(ROOT / "prometheus" / "rules" / "llm-recording-rules.yaml")
    assert f'job="{job}"' in recording["groups"][0]["rules"][0]["expr"]
    for monitor, endpoints in ((of_kind("ServiceMonitor")[0], "endpoints"), (of_kind("PodMonitor")[0], "podMetricsEndpoints")):
        spec = monitor["spec"]
        assert spec["selector"] == {"matchLabels": cfg["app"]["matchLabels"]}
        assert spec["namespaceSelector"] == {"any": True}  # app.namespaces is [] by default
        (endpoint,) = spec[endpoints]
        assert (endpoint["port"], endpoint["path"]) == (cfg["app"]["port"], "/metrics")
        assert endpoint["relabelings"] == [{"action": "replace", "targetLabel": "job", "replacement": job}]


def test_a_selector_for_another_job_is_refused(tmp_path):
    overrides = tmp_path / "o.libsonnet"
    overrides.write_text("""{ _config+:: { llmSelector: 'job="elsewhere"' } }""")
    with pytest.raises(RuntimeError, match='must select job="llm-app"'):
        generate.render(overrides)


def test_namespace_and_labels_come_from_config(tmp_path):
    overrides = tmp_path / "o.libsonnet"
    overrides.write_text("{ _config+:: { kubernetes+: { namespace: 'obs', labels: { team: 'ml' } } } }")
    files = generate.render(overrides)
    for path, content in files.items():
        if K8S in path.parents and path.name != "kustomization.yaml":
            obj = yaml.safe_load(content)
            assert obj["metadata"]["namespace"] == "obs" and obj["metadata"]["labels"]["team"] == "ml", path
        elif K8S in path.parents:
            assert yaml.safe_load(content)["namespace"] == "obs"
    rules = yaml.safe_load(files[K8S / "base" / "prometheusrule.yaml"])
    assert {r["labels"]["namespace"] for g in rules["spec"]["groups"] for r in g["rules"] if "alert" in r} == {"obs"}


# --- kustomize ---------------------------------------------------------------------------------


def test_each_kustomization_references_exactly_the_files_beside_it():
    kustomizations = sorted(K8S.rglob("kustomization.yaml"))
    assert [str(k.relative_to(K8S)) for k in kustomizations] == [
        "base/kustomization.yaml", "kustomization.yaml", "podmonitor/kustomization.yaml"]
    reached = set()
    for k in kustomizations:
        doc = load(k)
        assert doc["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and doc["kind"] == "Kustomization"
        assert set(doc) <= {"apiVersion", "kind", "namespace", "resources"}, k
        here = k.parent
        files = {p for p in here.iterdir() if p.is_file() and p.name != "kustomization.yaml"}
        referenced = {(here / r).resolve() for r in doc["resources"]}
        assert {p for p in referenced if p.is_file()} == files, k
        for d in (p for p in referenced if not p.is_file()):
            assert (d / "kustomization.yaml").is_file(), (k, d)
        reached |= files
    assert reached == {p for p in K8S.rglob("*") if p.is_file() and p.name != "kustomization.yaml"}


def test_kustomize_builds_both_variants():
    namespace = k8s_config()["namespace"]
    expected_base = ["AlertmanagerConfig", "ConfigMap", "ConfigMap", "ConfigMap", "PrometheusRule"]
    for directory, monitor in ((K8S, "ServiceMonitor"), (K8S / "podmonitor", "PodMonitor")):
        built = kustomize(directory)
        assert sorted(o["kind"] for o in built) == sorted(expected_base + [monitor]), directory
        assert {o["metadata"]["namespace"] for o in built} == {namespace}
        # kustomize passes the objects through unchanged.
        by_kind = {(o["kind"], o["metadata"]["name"]): o for o in built}
        for obj in objects().values():
            key = (obj["kind"], obj["metadata"]["name"])
            if key in by_kind:
                assert by_kind[key] == obj, key
        crs = [o for o in built if o["apiVersion"].startswith("monitoring.coreos.com/")]
        assert all(r["errors"] == [] for r in validate_custom_resources(crs))


# --- AlertmanagerConfig = alertmanager.yml ------------------------------------------------------


def _to_alertmanager_yml(spec: dict) -> dict:
    """Read the AlertmanagerConfig back into alertmanager.yml's shape (the operator's job)."""
    def matchers(ms):
        return [f'{m["name"]}{m["matchType"]}"{m["value"]}"' for m in ms]

    def route(r):
        out = {}
        for key, value in r.items():
            name = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key)
            out[name] = matchers(value) if key == "matchers" else [route(x) for x in value] if key == "routes" else value
        return out

    return {
        "route": route(spec["route"]),
        "inhibit_rules": [{"source_matchers": matchers(r["sourceMatch"]), "target_matchers": matchers(r["targetMatch"]),
                           **({"equal": r["equal"]} if "equal" in r else {})} for r in spec["inhibitRules"]],
        "receivers": [r["name"] for r in spec["receivers"]],
    }


def test_alertmanagerconfig_routes_and_inhibits_as_alertmanager_yml():
    am = load(ROOT / "alertmanager" / "alertmanager.yml")
    spec = of_kind("AlertmanagerConfig")[0]["spec"]
    back = _to_alertmanager_yml(spec)
    assert back["route"] == am["route"]
    assert back["inhibit_rules"] == am["inhibit_rules"]
    assert back["receivers"] == [r["name"] for r in am["receivers"]]
    # critical pages PagerDuty and goes on to Slack; warnings go to Slack.
    critical, warning = spec["route"]["routes"][:2]
    assert critical["receiver"] == "pagerduty" and critical["continue"] is True
    assert critical["matchers"] == [{"name": "severity", "value": "critical", "matchType": "="}]
    assert warning["receiver"] == "slack"


def test_alertmanagerconfig_reads_keys_from_a_secret_by_reference():
    secret = k8s_config()["alertmanagerSecret"]
    receivers = {r["name"]: r for r in of_kind("AlertmanagerConfig")[0]["spec"]["receivers"]}
    (pd,) = receivers["pagerduty"]["pagerdutyConfigs"]
    (slack,) = receivers["slack"]["slackConfigs"]
    assert pd["routingKey"] == {"name": secret["name"], "key": secret["pagerdutyRoutingKey"]}
    assert slack["apiURL"] == {"name": secret["name"], "key": secret["slackApiURL"]}
    assert "url" not in pd  # real PagerDuty, not alertmanager.yml's local capture receiver
    # No Secret object and nothing shaped like a key or a webhook is committed.
    assert not [o for o in objects().values() if o["kind"] == "Secret"]
    text = "".join(p.read_text() for p in K8S.rglob("*.yaml"))
    assert not re.search(r"hooks\.slack\.com|\b[0-9a-f]{32}\b", text)
    # The README shows how to create it, from environment variables.
    readme = (ROOT / "README.md").read_text()
    assert (f"kubectl -n {k8s_config()['namespace']} create secret generic {secret['name']}") in readme
    assert f'--from-literal={secret["pagerdutyRoutingKey"]}="$PAGERDUTY_ROUTING_KEY"' in readme
    assert f'--from-literal={secret["slackApiURL"]}="$SLACK_WEBHOOK_URL"' in readme


NOTIFICATION = {
    "receiver": "x", "status": "firing", "externalURL": "http://alertmanager.example:9093",
    "alerts": [{
        "status": "firing", "startsAt": "2026-12-07T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example/graph", "fingerprint": "1",
        "labels": {"alertname": "LLMHighErrorRate", "severity": "critical", "provider": "openai", "model": "gpt-4o",
                   "feature": "search", "long": "1h", "short": "5m"},
        "annotations": {"summary": "LLM calls are failing fast enough to exhaust the error budget.",
                        "description": "openai/gpt-4o (feature search): 20% of calls failed",
                        "runbook_url": "https://runbook.example/#llmhigherrorrate",
                        "dashboard_url": "https://grafana.example/d/llm-overview"},
    }],
    "groupLabels": {"alertname": "LLMHighErrorRate"},
    "commonLabels": {"alertname": "LLMHighErrorRate", "severity": "critical", "provider": "openai",
                     "model": "gpt-4o", "feature": "search", "long": "1h", "short": "5m"},
    "commonAnnotations": {},
}


def _render(text: str, glob: Path, data: Path) -> str:
    result = subprocess.run(["amtool", "template", "render", f"--template.glob={glob}", f"--template.text={text}",
                             f"--template.data={data}"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_inlined_templates_render_as_the_template_files(tmp_path):
    """Each notification field of the AlertmanagerConfig (templates inlined) renders, in
    Alertmanager's own template engine, exactly as alertmanager.yml's field with the
    template files loaded: firing critical with provider labels, and a job-only alert."""
    am = load(ROOT / "alertmanager" / "alertmanager.yml")
    spec = of_kind("AlertmanagerConfig")[0]["spec"]
    shipped = {"pagerduty": am["receivers"][0]["pagerduty_configs"][0], "slack": am["receivers"][1]["slack_configs"][0]}
    ours = {"pagerduty": spec["receivers"][0]["pagerdutyConfigs"][0], "slack": spec["receivers"][1]["slackConfigs"][0]}
    pairs = [(shipped["pagerduty"][k], ours["pagerduty"][c]) for k, c in
             (("severity", "severity"), ("description", "description"), ("component", "component"))]
    pairs += [(shipped["pagerduty"]["details"][d["key"]], d["value"]) for d in ours["pagerduty"]["details"]]
    pairs += [(shipped["pagerduty"]["links"][i]["href"], link["href"]) for i, link in enumerate(ours["pagerduty"]["pagerDutyLinkConfigs"])]
    pairs += [(shipped["slack"][k], ours["slack"][c]) for k, c in
              (("color", "color"), ("title", "title"), ("title_link", "titleLink"), ("text", "text"))]
    assert len(pairs) == 14
    assert not any('template "llm.' in ours_text for _, ours_text in pairs)
    empty = tmp_path / "none.tmpl"
    empty.write_text("")
    exporter_down = copy.deepcopy(NOTIFICATION)
    down_labels = {"alertname": "LLMExporterDown", "severity": "critical", "job": "llm-app"}
    exporter_down["alerts"][0]["labels"] = down_labels
    exporter_down["commonLabels"] = dict(down_labels)
    rendered = []
    for n, notification in enumerate((NOTIFICATION, exporter_down)):
        data = tmp_path / f"data{n}.json"
        data.write_text(json.dumps(notification))
        for shipped_text, ours_text in pairs:
            want = _render(shipped_text, ROOT / "alertmanager" / "templates" / "*.tmpl", data)
            assert _render(ours_text, empty, data) == want, shipped_text
            rendered.append(want)
    assert "[FIRING:1] LLMHighErrorRate openai/gpt-4o (search) (critical)" in rendered
    assert "[FIRING:1] LLMExporterDown job llm-app (critical)" in rendered


def test_every_object_fits_kubectl_apply():
    """Client-side `kubectl apply` keeps each object as JSON in its last-applied annotation,
    and the API server refuses annotations over 256 KiB in all."""
    for path, obj in objects().items():
        size = len(json.dumps(obj, separators=(",", ":")).encode())
        assert size < 256 * 1024 - 4096, (path, size)
