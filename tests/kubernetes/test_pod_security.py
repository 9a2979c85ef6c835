"""Every pod passes the "restricted" Pod Security Standard, Ollama included.

The namespace enforces "restricted", so a pod that failed would be refused by the API server; this
checks it before any cluster sees the manifests. Ollama is no exception: the official image runs as
root, but Ollama does not need root, and the manifests run it as uid 1000 with HOME on its model
volume. The decision is tested explicitly below, not only as one pod among others.
"""

from __future__ import annotations

import copy

import pytest
from kubernetes.manifests import VARIANTS, find, pod_templates, template
from kubernetes.pod_security import RULES, restricted_violations


def all_pods(rendered):
    return [(variant, pod) for variant, docs in rendered.docs.items() for pod in pod_templates(docs)]


def test_every_pod_of_every_variant_is_restricted(rendered):
    checked = 0
    for variant, pod in all_pods(rendered):
        meta = {"labels": pod.labels, "annotations": pod.annotations}
        assert restricted_violations(meta, pod.spec) == [], f"{variant} {pod.ref}"
        checked += 1
    # Seven workloads per variant (the secrets Job included): nothing was skipped.
    assert checked == 7 * len(VARIANTS)


def test_the_namespace_enforces_restricted(rendered):
    for docs in rendered.docs.values():
        labels = find(docs, "Namespace", "offline-agents")["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert labels["pod-security.kubernetes.io/enforce-version"] == "latest"


def test_every_pod_names_its_unprivileged_user(rendered):
    """Stricter than the standard: runAsNonRoot alone lets the kubelet refuse an image whose user is
    root (Ollama's) at start. Every pod says which non-zero uid it runs as."""
    for variant, pod in all_pods(rendered):
        context = pod.spec["securityContext"]
        assert context["runAsNonRoot"] is True, f"{variant} {pod.ref}"
        assert context["runAsUser"] > 0 and context["runAsGroup"] > 0, f"{variant} {pod.ref}"
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, f"{variant} {pod.ref}"


def test_every_container_is_locked_down(rendered):
    for variant, pod in all_pods(rendered):
        for container in pod.containers():
            context = container["securityContext"]
            where = f"{variant} {pod.ref} {container['name']}"
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            # Every image here allows it; what must be written goes to emptyDir or a volume.
            assert context["readOnlyRootFilesystem"] is True, where


def test_no_pod_but_the_secrets_job_talks_to_the_kubernetes_api(rendered):
    for variant, pod in all_pods(rendered):
        token = pod.ref == "Job/secrets"  # it creates the Secret, with a Role for exactly that
        assert pod.spec["automountServiceAccountToken"] is token, f"{variant} {pod.ref}"
        assert (pod.spec.get("serviceAccountName") == "secrets-maker") is token, f"{variant} {pod.ref}"
        # Service links would inject OLLAMA_PORT=tcp://... and friends into every environment.
        assert pod.spec["enableServiceLinks"] is False, f"{variant} {pod.ref}"


@pytest.mark.parametrize("ref", ["Deployment/ollama", "Job/ollama-seed"])
def test_ollama_runs_unprivileged_with_home_on_the_model_volume(rendered, ref):
    """The exception the official image would need, not taken: uid 1000, HOME where Ollama's own
    Linux install puts it (scratch), models and key pair on the volume at $HOME/.ollama."""
    for docs in rendered.docs.values():
        pod = template(docs, ref)
        context = pod.spec["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (1000, 1000, 1000)
        container = pod.spec["containers"][0]
        env = {v["name"]: v.get("value") for v in container["env"]}
        assert env["HOME"] == "/usr/share/ollama"
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod.spec["volumes"]}
        models = volumes[mounts[env["HOME"] + "/.ollama"]]
        assert models["persistentVolumeClaim"]["claimName"] == "ollama-models"
        assert "emptyDir" in volumes[mounts[env["HOME"]]] and "emptyDir" in volumes[mounts["/tmp"]]


# --- the checker refuses what the standard refuses ----------------------------------------------

GOOD_POD = {
    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{
        "name": "app", "image": "example:1",
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "ports": [{"containerPort": 8080}],
    }],
    "volumes": [{"name": "tmp", "emptyDir": {}}],
}  # fmt: skip


def _break(change):
    spec = copy.deepcopy(GOOD_POD)
    meta: dict = {"annotations": {}}
    change(meta, spec, spec["containers"][0])
    return restricted_violations(meta, spec)


BROKEN = {
    "runs as root": (lambda m, s, c: s["securityContext"].update(runAsUser=0), "runAsUser=0: pod"),
    "no runAsNonRoot": (lambda m, s, c: s["securityContext"].pop("runAsNonRoot"), "runAsNonRoot != true"),
    "container opts out of non-root": (
        lambda m, s, c: c["securityContext"].update(runAsNonRoot=False), "runAsNonRoot != true"),
    "privilege escalation left to default": (
        lambda m, s, c: c["securityContext"].pop("allowPrivilegeEscalation"), "allowPrivilegeEscalation != false"),
    "capabilities kept": (lambda m, s, c: c["securityContext"].pop("capabilities"), "must drop ALL"),
    "capability added": (
        lambda m, s, c: c["securityContext"]["capabilities"].update(add=["NET_ADMIN"]), "adds NET_ADMIN"),
    "no seccomp profile": (lambda m, s, c: s["securityContext"].pop("seccompProfile"), "seccompProfile"),
    "unconfined seccomp": (
        lambda m, s, c: c["securityContext"].update(seccompProfile={"type": "Unconfined"}), "type Unconfined"),
    "privileged": (lambda m, s, c: c["securityContext"].update(privileged=True), "privileged"),
    "host network": (lambda m, s, c: s.update(hostNetwork=True), "hostNetwork=true"),
    "host PID": (lambda m, s, c: s.update(hostPID=True), "hostPID=true"),
    "host port": (lambda m, s, c: c["ports"][0].update(hostPort=80), "hostPort 80"),
    "hostPath volume": (
        lambda m, s, c: s["volumes"].append({"name": "root", "hostPath": {"path": "/"}}), "hostPath"),
    "nfs volume": (
        lambda m, s, c: s["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}),
        "restricted volume types"),
    "unsafe sysctl": (
        lambda m, s, c: s["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]), "sysctls"),
    "custom SELinux type": (
        lambda m, s, c: c["securityContext"].update(seLinuxOptions={"type": "spc_t"}), "seLinuxOptions"),
    "unmasked /proc": (lambda m, s, c: c["securityContext"].update(procMount="Unmasked"), "procMount"),
    "AppArmor unconfined": (
        lambda m, s, c: m["annotations"].update({"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}),
        "appArmor"),
    "Windows host process": (
        lambda m, s, c: c["securityContext"].update(windowsOptions={"hostProcess": True}), "hostProcess"),
    "probe to another host": (
        lambda m, s, c: c.update(livenessProbe={"httpGet": {"host": "10.0.0.1", "port": 80}}),
        "probe or lifecycle host"),
    "init container as root": (
        lambda m, s, c: s.update(initContainers=[{**copy.deepcopy(c), "name": "init",
                                                  "securityContext": {**c["securityContext"], "runAsUser": 0}}]),
        "runAsUser=0: container init"),
}  # fmt: skip


def test_the_reference_pod_is_admitted():
    assert restricted_violations({}, copy.deepcopy(GOOD_POD)) == []


@pytest.mark.parametrize("case", list(BROKEN))
def test_the_checker_refuses(case):
    change, expected = BROKEN[case]
    problems = _break(change)
    assert problems, f"{case}: admitted"
    assert any(expected in p for p in problems), problems


def test_every_rule_is_exercised_by_a_negative_case():
    fired = set()
    for change, _ in BROKEN.values():
        spec = copy.deepcopy(GOOD_POD)
        meta: dict = {"annotations": {}}
        change(meta, spec, spec["containers"][0])
        fired |= {name for name, rule in RULES.items() if rule(meta, spec)}
    assert fired == set(RULES)


def test_a_broken_ollama_pod_from_the_manifests_is_refused(rendered):
    """The check runs on the real pods too: Ollama as root, as the image would have it, fails."""
    pod = template(rendered.docs["gpu"], "Deployment/ollama")
    spec = copy.deepcopy(pod.spec)
    spec["securityContext"]["runAsUser"] = 0
    spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    problems = restricted_violations({}, spec)
    assert "runAsUser=0: pod" in problems
    assert "allowPrivilegeEscalation != false: container ollama" in problems
