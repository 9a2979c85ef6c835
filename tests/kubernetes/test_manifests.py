"""deploy/kubernetes renders, validates strictly against the Kubernetes schemas, and follows the rules
a platform engineer expects: labels, namespace, pinned images pulled only when absent, resources,
probes, secrets made on site and never committed, and the variants doing what they say."""

from __future__ import annotations

import re
import shutil
import subprocess

import kubernetes_validate
import pytest
from kubernetes.manifests import (
    NAMESPACE,
    ROOT,
    VARIANTS,
    config_map,
    find,
    iter_containers,
    load_documents,
    pod_templates,
    read_env_file,
    template,
)
from kubernetes_validate.utils import latest_version

# The oldest Kubernetes the manifests are written for, and the newest schema bundled.
SCHEMA_VERSIONS = ["1.29.0", latest_version()]


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_object_validates_strictly(rendered, variant, version):
    for doc in rendered.docs[variant]:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} against {version}: {error.message} "
                        f"at {'.'.join(map(str, error.path))}")  # fmt: skip


def test_the_validator_rejects_an_unknown_field(cpu):
    deployment = {**find(cpu, "Deployment", "ollama")}
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(deployment, SCHEMA_VERSIONS[0], strict=True)


def test_current_kustomize_renders_the_same(rendered):
    """kustomize v5 (as built into kubectl) reads the same files into the same objects. Optional:
    kubectl is not part of the test set-up."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: only kustomize 4.5.4 was checked")
    version = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True, check=False)
    if "Kustomize Version: v5" not in version.stdout:
        pytest.skip(f"kubectl without kustomize v5: {version.stdout.strip()}")
    for variant, folder in VARIANTS.items():
        done = subprocess.run([kubectl, "kustomize", str(rendered.tree / folder)], capture_output=True, text=True,
                              check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert load_documents(done.stdout) == rendered.docs[variant], variant


def test_every_object_is_labelled_and_in_the_namespace(rendered):
    for variant, docs in rendered.docs.items():
        for doc in docs:
            where = f"{variant} {doc['kind']}/{doc['metadata']['name']}"
            assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "offline-agents", where
            if doc["kind"] != "Namespace":
                assert doc["metadata"]["namespace"] == NAMESPACE, where
            if doc["kind"] not in ("Namespace", "ConfigMap", "Secret", "NetworkPolicy"):
                assert doc["metadata"]["labels"]["app.kubernetes.io/name"], where
        for pod in pod_templates(docs):
            assert pod.labels["app.kubernetes.io/part-of"] == "offline-agents", pod.ref
            assert pod.labels["app.kubernetes.io/name"] and pod.labels["app.kubernetes.io/component"], pod.ref


def test_images_are_pinned_and_pulled_only_when_absent(rendered):
    pinned = {value for name, value in read_env_file(ROOT / ".env").items() if name.endswith("_IMAGE")}
    pinned |= {value.partition("@")[0] for value in pinned}  # offline: by tag (see the next test)
    for variant, docs in rendered.docs.items():
        for pod, container in iter_containers(docs):
            where = f"{variant} {pod.ref} {container['name']}"
            assert container["imagePullPolicy"] == "IfNotPresent", where
            assert container["image"] in pinned, where
            assert not container["image"].endswith(":latest"), where


def test_every_container_has_requests_and_limits(rendered):
    for variant, docs in rendered.docs.items():
        for pod, container in iter_containers(docs):
            where = f"{variant} {pod.ref} {container['name']}"
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert "memory" in resources["limits"], where
            if pod.ref == "Deployment/ollama":
                # On purpose: llama.cpp sizes its threads by the node's cores; a CFS quota stalls it.
                assert "cpu" not in resources["limits"], where
            else:
                assert "cpu" in resources["limits"], where


def test_servers_have_readiness_and_liveness_probes(rendered):
    for variant, docs in rendered.docs.items():
        for pod in pod_templates(docs):
            if pod.kind != "Deployment" or pod.ref == "Deployment/orchestrator":  # a terminal, not a server
                continue
            for container in pod.containers():
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    assert probe in container, f"{variant} {pod.ref} {probe}"


def test_probes_work_in_the_real_images(cpu):
    """Ollama has no curl: its CLI asks. The dashboard is distroless: no exec at all."""
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert template(cpu, "Deployment/ollama").container("ollama")[probe]["exec"]["command"] == ["ollama", "list"]
        assert set(template(cpu, "Deployment/aspire-dashboard").container("aspire-dashboard")[probe]) & {
            "tcpSocket", "httpGet"}  # fmt: skip
        assert template(cpu, "Deployment/mcp-server").container("mcp-server")[probe]["httpGet"]["path"] == "/health"


# --- secrets --------------------------------------------------------------------------------------


def test_the_secret_is_made_in_the_cluster_by_the_job_with_the_least_rights(cpu):
    """No secrets step before the first `kubectl apply -k`: nothing renders a Secret; the Job makes
    it through the API (tested against a fake API in tests/ops/test_secrets.py) and the pods mount
    it by its fixed name, waiting until it exists."""
    assert not [d for d in cpu if d["kind"] == "Secret"]
    job = template(cpu, "Job/secrets")
    assert job.container("secrets")["args"] == ["secrets", "--kubernetes", "offline-agents-secrets"]
    assert job.spec["serviceAccountName"] == "secrets-maker"
    (role,) = [d for d in cpu if d["kind"] == "Role"]
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["offline-agents-secrets"], "verbs": ["get"]},
    ]
    (binding,) = [d for d in cpu if d["kind"] == "RoleBinding"]
    assert binding["roleRef"]["name"] == "secrets-maker"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "secrets-maker", "namespace": NAMESPACE}]
    mounting = {
        pod.ref
        for pod in pod_templates(cpu)
        for volume in pod.spec.get("volumes", [])
        if volume.get("secret", {}).get("secretName") == "offline-agents-secrets"
    }
    assert mounting == {"Deployment/aspire-dashboard", "Deployment/mcp-server", "Deployment/orchestrator",
                        "Job/orchestrator-plan"}  # fmt: skip
    tracked = subprocess.run(["git", "ls-files", "deploy/kubernetes"], capture_output=True, text=True, cwd=ROOT,
                             check=True).stdout.split()  # fmt: skip
    assert not [path for path in tracked if path.startswith("deploy/kubernetes/base/secrets/")]


# --- what each variant is for ----------------------------------------------------------------------


def test_gpu_variant_asks_for_a_gpu_on_gpu_nodes(gpu, cpu):
    pod = template(gpu, "Deployment/ollama")
    assert pod.container("ollama")["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod.spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod.spec["tolerations"]
    # The seeding job follows Ollama onto the tainted GPU node (ReadWriteOnce volume).
    assert pod.spec["tolerations"] == template(gpu, "Job/ollama-seed").spec["tolerations"]
    cpu_pod = template(cpu, "Deployment/ollama")
    assert "nvidia.com/gpu" not in cpu_pod.container("ollama")["resources"]["limits"]
    assert "nodeSelector" not in cpu_pod.spec and "tolerations" not in cpu_pod.spec


def test_one_replica_on_a_read_write_once_volume(cpu):
    assert find(cpu, "PersistentVolumeClaim", "ollama-models")["spec"]["accessModes"] == ["ReadWriteOnce"]
    ollama = find(cpu, "Deployment", "ollama")["spec"]
    assert ollama["replicas"] == 1 and ollama["strategy"]["type"] == "Recreate"
    affinity = template(cpu, "Job/ollama-seed").spec["affinity"]["podAffinity"]
    (term,) = affinity["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": "ollama"}
    assert term["topologyKey"] == "kubernetes.io/hostname"


def test_scale_out_shares_one_read_write_many_volume(rendered):
    docs = rendered.docs["air-gapped-gpu-cluster"]
    assert find(docs, "PersistentVolumeClaim", "ollama-models")["spec"]["accessModes"] == ["ReadWriteMany"]
    ollama = find(docs, "Deployment", "ollama")["spec"]
    assert ollama["replicas"] == 3
    assert ollama["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    assert ollama["template"]["spec"]["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert "affinity" not in template(docs, "Job/ollama-seed").spec
    assert find(docs, "PodDisruptionBudget", "ollama")["spec"]["maxUnavailable"] == 1
    # Each replica still gets the GPU tuning: GPU_OLLAMA_NUM_PARALLEL requests at once.
    env = {v["name"]: v for v in template(docs, "Deployment/ollama").container("ollama")["env"]}
    assert env["OLLAMA_NUM_PARALLEL"]["valueFrom"]["configMapKeyRef"]["key"] == "GPU_OLLAMA_NUM_PARALLEL"


def test_offline_sets_offline_and_keeps_every_other_setting(rendered):
    online, offline = config_map(rendered.docs["cpu"]), config_map(rendered.docs["cpu-offline"])
    assert online["OFFLINE"] == "0" and offline["OFFLINE"] == "1"
    assert {k: v for k, v in offline.items() if k != "OFFLINE"} == {k: v for k, v in online.items() if k != "OFFLINE"}
    site = config_map(rendered.docs["air-gapped-gpu-cluster"])
    assert site["OFFLINE"] == "1" and site["OLLAMA_MODEL"] == "qwen2.5:7b"


def test_the_dashboard_ingress_exposes_only_the_ui(rendered):
    ingress = find(rendered.docs["air-gapped-gpu-cluster"], "Ingress")
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": "aspire-dashboard", "port": {"name": "ui"}}
    assert not [d for d in rendered.docs["cpu"] if d["kind"] == "Ingress"]


def test_the_terminal_can_be_attached_and_the_job_plans_once(cpu):
    terminal = template(cpu, "Deployment/orchestrator").container("orchestrator")
    assert terminal["stdin"] is True and terminal["tty"] is True
    assert terminal["args"] == ["--standby"]  # as under compose's `up`: a prompt only once someone is there
    plan = find(cpu, "Job", "orchestrator-plan")["spec"]
    container = plan["template"]["spec"]["containers"][0]
    assert container["args"][0] == "--prompt" and container["args"][-1] == "--json"
    assert container["env"] == terminal["env"], "the plan and the terminal read the same settings"
    assert plan["template"]["spec"]["restartPolicy"] == "Never"
    fail_fast = plan["podFailurePolicy"]["rules"][0]
    assert fail_fast["action"] == "FailJob" and fail_fast["onExitCodes"]["values"] == [2]  # a bad setting
    assert plan["ttlSecondsAfterFinished"] > 0 and plan["activeDeadlineSeconds"] > 0


def test_jobs_clean_up_so_the_next_apply_can_recreate_them(rendered):
    for docs in rendered.docs.values():
        for job in (d for d in docs if d["kind"] == "Job"):
            assert job["spec"]["ttlSecondsAfterFinished"] > 0, job["metadata"]["name"]
            assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_the_guide_names_only_paths_that_exist():
    guide = (ROOT / "docs" / "kubernetes-guide.md").read_text()
    named = set(re.findall(r"deploy/kubernetes/[\w./-]*[\w/]", guide))
    assert named, "the guide names the manifests it explains"
    for path in sorted(p for p in named if not p.startswith("deploy/kubernetes/base/secrets")):  # made on site
        assert (ROOT / path).exists(), f"docs/kubernetes-guide.md names {path}, which does not exist"


# --- what the real images need at run time ---------------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_pulled_images_run_pinned_online_and_by_tag_offline(rendered, variant):
    """Online the registry's digest pins the content. An air-gapped cluster imports the bundle's images,
    which keep their tags but not the registry's digests: there a digest would never match."""
    env = read_env_file(ROOT / ".env")
    offline = variant in ("cpu-offline", "air-gapped-gpu-cluster")
    seen = set()
    for variable in ("OLLAMA_IMAGE", "DASHBOARD_IMAGE"):
        tag = env[variable].partition("@")[0]
        wanted = tag if offline else env[variable]
        for pod, container in iter_containers(rendered.docs[variant]):
            if container["image"].partition("@")[0] == tag:
                assert container["image"] == wanted, f"{variant} {pod.ref} {container['name']}"
                seen.add(variable)
    assert seen == {"OLLAMA_IMAGE", "DASHBOARD_IMAGE"}


def test_pods_without_a_gpu_request_stay_off_the_gpus(rendered):
    """The Ollama image sets NVIDIA_VISIBLE_DEVICES=all: under the NVIDIA runtime a pod that requests
    no nvidia.com/gpu would get every GPU of its node (NVIDIA/k8s-device-plugin#61). The seeding job
    runs on Ollama's GPU node by design, and the CPU Ollama may land on one."""
    ollama_image = read_env_file(ROOT / ".env")["OLLAMA_IMAGE"].partition("@")[0]
    checked = set()
    for variant, docs in rendered.docs.items():
        for pod, container in iter_containers(docs):
            if container["image"].partition("@")[0] != ollama_image:
                continue
            env = {v["name"]: v.get("value") for v in container.get("env", [])}
            where = f"{variant} {pod.ref} {container['name']}"
            if "nvidia.com/gpu" in container["resources"].get("limits", {}):
                assert "NVIDIA_VISIBLE_DEVICES" not in env, f"{where}: the device plugin chooses the GPU"
            else:
                assert env.get("NVIDIA_VISIBLE_DEVICES") == "void", where
            checked.add((variant, pod.ref))
    assert {("cpu", "Deployment/ollama"), ("cpu", "Job/ollama-seed"), ("gpu", "Job/ollama-seed")} <= checked


def test_read_only_dotnet_dashboard_has_a_writable_home(cpu):
    """ASP.NET keeps data-protection keys in ~/.aspnet (HOME=/home/app, the image's user 1654)."""
    pod = template(cpu, "Deployment/aspire-dashboard")
    container = pod.container("aspire-dashboard")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod.spec["securityContext"]["runAsUser"] == 1654
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod.spec["volumes"]}
    for path in ("/home/app", "/tmp"):
        assert "emptyDir" in volumes[mounts[path]], path
