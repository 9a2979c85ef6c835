"""The "restricted" Pod Security Standard, checked on a pod template without a cluster.

Every control of the Baseline and Restricted profiles as the Pod Security admission controller
evaluates them (kubernetes/kubernetes, staging/src/k8s.io/pod-security-admission/policy, latest
version of each check), for Linux pods. Each rule returns what it finds wrong, in words close to
the admission controller's own.
"""

from __future__ import annotations

from collections.abc import Callable

# Baseline limits added capabilities to Docker's defaults; restricted narrows that to one.
RESTRICTED_CAPABILITIES = {"NET_BIND_SERVICE"}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
# Restricted: the only inline volume sources allowed.
VOLUME_SOURCES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                  "projected", "secret"}  # fmt: skip
SECCOMP_TYPES = {"RuntimeDefault", "Localhost"}
APPARMOR_TYPES = {"RuntimeDefault", "Localhost"}
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def _containers(spec: dict) -> list[dict]:
    return spec.get("containers", []) + spec.get("initContainers", []) + spec.get("ephemeralContainers", [])


def _sc(container: dict) -> dict:
    return container.get("securityContext") or {}


def _pod_sc(spec: dict) -> dict:
    return spec.get("securityContext") or {}


# --- Baseline ------------------------------------------------------------------------------------


def host_process(meta: dict, spec: dict) -> list[str]:
    setters = ["pod"] if (_pod_sc(spec).get("windowsOptions") or {}).get("hostProcess") else []
    setters += [c["name"] for c in _containers(spec) if (_sc(c).get("windowsOptions") or {}).get("hostProcess")]
    return [f"hostProcess: {s} sets windowsOptions.hostProcess=true" for s in setters]


def host_namespaces(meta: dict, spec: dict) -> list[str]:
    return [f"host namespaces: {field}=true" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field)]


def privileged(meta: dict, spec: dict) -> list[str]:
    return [f"privileged: container {c['name']} sets privileged=true" for c in _containers(spec)
            if _sc(c).get("privileged")]  # fmt: skip


def host_ports(meta: dict, spec: dict) -> list[str]:
    return [f"hostPort: container {c['name']} uses hostPort {p['hostPort']}" for c in _containers(spec)
            for p in c.get("ports", []) if p.get("hostPort")]  # fmt: skip


def host_path_volumes(meta: dict, spec: dict) -> list[str]:
    return [f"hostPath volumes: volume {v['name']}" for v in spec.get("volumes", []) if "hostPath" in v]


def app_armor(meta: dict, spec: dict) -> list[str]:
    found = []
    for key, value in (meta.get("annotations") or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/"):
            if value != "runtime/default" and not value.startswith("localhost/"):
                found.append(f"appArmor: annotation {key}={value}")
    profiles = [("pod", _pod_sc(spec).get("appArmorProfile"))]
    profiles += [(c["name"], _sc(c).get("appArmorProfile")) for c in _containers(spec)]
    for owner, profile in profiles:
        if profile and profile.get("type") not in APPARMOR_TYPES:
            found.append(f"appArmor: {owner} sets appArmorProfile.type={profile.get('type')}")
    return found


def se_linux(meta: dict, spec: dict) -> list[str]:
    found = []
    options = [("pod", _pod_sc(spec).get("seLinuxOptions"))]
    options += [(c["name"], _sc(c).get("seLinuxOptions")) for c in _containers(spec)]
    for owner, option in options:
        if not option:
            continue
        if option.get("type", "") not in SELINUX_TYPES:
            found.append(f"seLinuxOptions: {owner} sets type {option['type']}")
        for field in ("user", "role"):
            if option.get(field):
                found.append(f"seLinuxOptions: {owner} sets {field}")
    return found


def proc_mount(meta: dict, spec: dict) -> list[str]:
    return [f"procMount: container {c['name']} sets procMount={_sc(c)['procMount']}" for c in _containers(spec)
            if _sc(c).get("procMount", "Default") != "Default"]  # fmt: skip


def sysctls(meta: dict, spec: dict) -> list[str]:
    return [f"sysctls: {s['name']} is not a safe sysctl" for s in _pod_sc(spec).get("sysctls", [])
            if s["name"] not in SAFE_SYSCTLS]  # fmt: skip


def probe_hosts(meta: dict, spec: dict) -> list[str]:
    found = []
    for c in _containers(spec):
        handlers = [(p, c.get(p)) for p in PROBES]
        handlers += [(f"lifecycle.{h}", (c.get("lifecycle") or {}).get(h)) for h in ("postStart", "preStop")]
        for where, handler in handlers:
            for kind in ("httpGet", "tcpSocket"):
                if handler and (handler.get(kind) or {}).get("host"):
                    found.append(f"probe or lifecycle host: container {c['name']} {where}.{kind}.host")
    return found


# --- Restricted ----------------------------------------------------------------------------------


def volume_types(meta: dict, spec: dict) -> list[str]:
    found = []
    for volume in spec.get("volumes", []):
        sources = set(volume) - {"name"}
        if not sources or not sources <= VOLUME_SOURCES:
            found.append(f"restricted volume types: volume {volume['name']} uses {sorted(sources)}")
    return found


def privilege_escalation(meta: dict, spec: dict) -> list[str]:
    return [f"allowPrivilegeEscalation != false: container {c['name']}" for c in _containers(spec)
            if _sc(c).get("allowPrivilegeEscalation") is not False]  # fmt: skip


def run_as_non_root(meta: dict, spec: dict) -> list[str]:
    pod = _pod_sc(spec).get("runAsNonRoot")
    if pod is False:
        return ["runAsNonRoot != true: pod sets runAsNonRoot=false"]
    found = []
    for c in _containers(spec):
        value = _sc(c).get("runAsNonRoot")
        if value is False or (value is None and pod is not True):
            found.append(f"runAsNonRoot != true: container {c['name']} (and not the pod) must set runAsNonRoot=true")
    return found


def run_as_user(meta: dict, spec: dict) -> list[str]:
    found = ["runAsUser=0: pod"] if _pod_sc(spec).get("runAsUser") == 0 else []
    return found + [f"runAsUser=0: container {c['name']}" for c in _containers(spec) if _sc(c).get("runAsUser") == 0]


def seccomp(meta: dict, spec: dict) -> list[str]:
    pod = (_pod_sc(spec).get("seccompProfile") or {}).get("type")
    found = [f"seccompProfile: pod sets type {pod}"] if pod is not None and pod not in SECCOMP_TYPES else []
    for c in _containers(spec):
        own = (_sc(c).get("seccompProfile") or {}).get("type")
        if own is not None and own not in SECCOMP_TYPES:
            found.append(f"seccompProfile: container {c['name']} sets type {own}")
        elif own is None and pod not in SECCOMP_TYPES:
            found.append(f"seccompProfile: pod or container {c['name']} must set RuntimeDefault or Localhost")
    return found


def capabilities(meta: dict, spec: dict) -> list[str]:
    found = []
    for c in _containers(spec):
        caps = _sc(c).get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            found.append(f"unrestricted capabilities: container {c['name']} must drop ALL")
        for added in caps.get("add") or []:
            if added not in RESTRICTED_CAPABILITIES:
                found.append(f"unrestricted capabilities: container {c['name']} adds {added}")
    return found


RULES: dict[str, Callable[[dict, dict], list[str]]] = {
    # baseline
    "hostProcess": host_process,
    "hostNamespaces": host_namespaces,
    "privileged": privileged,
    "hostPorts": host_ports,
    "hostPathVolumes": host_path_volumes,
    "appArmor": app_armor,
    "seLinuxOptions": se_linux,
    "procMount": proc_mount,
    "sysctls": sysctls,
    "hostProbesAndHostLifecycle": probe_hosts,
    # restricted (baseline's capabilities and seccomp checks are narrowed by these)
    "restrictedVolumes": volume_types,
    "allowPrivilegeEscalation": privilege_escalation,
    "runAsNonRoot": run_as_non_root,
    "runAsUser": run_as_user,
    "seccompProfile_restricted": seccomp,
    "capabilities_restricted": capabilities,
}


def restricted_violations(meta: dict, spec: dict) -> list[str]:
    """Everything in this pod that the "restricted" level refuses; empty when it is admitted."""
    if (spec.get("os") or {}).get("name") == "windows":
        raise ValueError("Windows pods have other rules; this stack has none")
    return [problem for rule in RULES.values() for problem in rule(meta, spec)]
