"""Which pod can reach which pod (or address) on which port, computed from NetworkPolicy objects.

The semantics of networking.k8s.io/v1 as the API documents them: a pod selected by no policy of a
type is open in that direction; once selected, only what some rule allows gets through; a
connection needs both the source's egress and the destination's ingress to allow it. Peers:
podSelector alone means this namespace, namespaceSelector and podSelector in one peer are ANDed,
several peers are ORed, ipBlock matches addresses (with its exceptions); ports match by protocol
(TCP by default), number, range (endPort) or the destination's named port.

The cluster around the stack is modelled by a few stand-in endpoints: CoreDNS in kube-system, an
Ingress controller, another tenant's pod, the API server, the node, a cloud metadata address and
internet addresses over IPv4 and IPv6.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from kubernetes.manifests import NAMESPACE, pod_templates

Connection = tuple[str, str, int, str]  # source, destination, port, protocol


@dataclass(frozen=True)
class Endpoint:
    name: str
    ip: str
    namespace: str | None = None  # None: not a pod, only an address
    namespace_labels: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)
    ports: dict = field(default_factory=dict)  # named container ports -> number

    @property
    def is_pod(self) -> bool:
        return self.namespace is not None

    @property
    def ours(self) -> bool:
        return self.namespace == NAMESPACE


KUBE_DNS = Endpoint("kube-system/coredns", "10.244.9.10", "kube-system",
                    {"kubernetes.io/metadata.name": "kube-system"}, {"k8s-app": "kube-dns"}, {"dns": 53})  # fmt: skip
INGRESS_CONTROLLER = Endpoint("ingress-nginx/controller", "10.244.8.10", "ingress-nginx",
                              {"kubernetes.io/metadata.name": "ingress-nginx"},
                              {"app.kubernetes.io/name": "ingress-nginx"}, {"http": 80, "https": 443})  # fmt: skip
OTHER_TENANT = Endpoint("default/other-app", "10.244.7.10", "default", {"kubernetes.io/metadata.name": "default"},
                        {"app.kubernetes.io/name": "ollama"}, {"http": 8080})  # fmt: skip
ADDRESSES = [
    Endpoint("api-server", "10.96.0.1"),
    Endpoint("node", "192.168.10.5"),
    Endpoint("cloud-metadata", "169.254.169.254"),
    Endpoint("carrier-nat", "100.64.3.4"),
    Endpoint("internet-v4", "93.184.216.34"),
    Endpoint("internet-v6", "2606:2800:220:1::1"),
]
SURROUNDINGS = [KUBE_DNS, INGRESS_CONTROLLER, OTHER_TENANT, *ADDRESSES]
# Inside the cluster though not pods: the API server's Service address and a control-plane node.
API_SERVER = ("api-server", "node")
EXTRA_PORTS = {22, 53, 80, 443, 6443, 8080, 10250}


def stack_endpoints(docs: list[dict]) -> list[Endpoint]:
    """One pod per workload of the stack, with its labels and named ports."""
    (namespace,) = [d for d in docs if d["kind"] == "Namespace"]
    ns_labels = {**namespace["metadata"].get("labels", {}), "kubernetes.io/metadata.name": NAMESPACE}
    found = []
    for number, pod in enumerate(pod_templates(docs), start=1):
        ports = {p["name"]: p["containerPort"] for c in pod.containers() for p in c.get("ports", []) if p.get("name")}
        found.append(Endpoint(pod.ref, f"10.244.0.{number}", NAMESPACE, ns_labels, pod.labels, ports))
    return found


def selector_matches(selector: dict, labels: dict) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def peer_matches(peer: dict, endpoint: Endpoint, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        address = ipaddress.ip_address(endpoint.ip)
        block = peer["ipBlock"]
        network = ipaddress.ip_network(block["cidr"])
        if address.version != network.version or address not in network:
            return False
        return not any(address in ipaddress.ip_network(e) for e in block.get("except", [])
                       if ipaddress.ip_network(e).version == address.version)  # fmt: skip
    if not endpoint.is_pod:
        return False
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], endpoint.namespace_labels):
            return False
    elif endpoint.namespace != policy_namespace:
        return False
    return "podSelector" not in peer or selector_matches(peer["podSelector"], endpoint.labels)


def port_matches(rule_ports: list[dict] | None, port: int, protocol: str, destination: Endpoint) -> bool:
    if not rule_ports:
        return True
    for entry in rule_ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        if "port" not in entry:
            return True
        first = entry["port"]
        if isinstance(first, str):
            if destination.ports.get(first) == port:
                return True
            continue
        if first <= port <= entry.get("endPort", first):
            return True
    return False


def policy_types(policy: dict) -> list[str]:
    spec = policy["spec"]
    return spec.get("policyTypes") or ["Ingress", *(["Egress"] if "egress" in spec else [])]


def _selecting(policies: list[dict], pod: Endpoint, direction: str) -> list[dict]:
    # A policy acts in its own namespace only: one that lost its namespace protects nothing here.
    return [
        p
        for p in policies
        if pod.ours
        and p["metadata"].get("namespace") == pod.namespace
        and direction in policy_types(p)
        and selector_matches(p["spec"].get("podSelector") or {}, pod.labels)
    ]


def _rule_allows(rules: list[dict], peers_key: str, peer: Endpoint, port: int, protocol: str,
                 destination: Endpoint, namespace: str) -> bool:  # fmt: skip
    for rule in rules:
        peers = rule.get(peers_key)
        if peers and not any(peer_matches(p, peer, namespace) for p in peers):
            continue
        if port_matches(rule.get("ports"), port, protocol, destination):
            return True
    return False


def allowed(policies: list[dict], source: Endpoint, destination: Endpoint, port: int, protocol: str) -> bool:
    egress = _selecting(policies, source, "Egress")
    if egress and not any(_rule_allows(p["spec"].get("egress") or [], "to", destination, port, protocol,
                                       destination, NAMESPACE) for p in egress):  # fmt: skip
        return False
    ingress = _selecting(policies, destination, "Ingress")
    return not ingress or any(_rule_allows(p["spec"].get("ingress") or [], "from", source, port, protocol,
                                           destination, NAMESPACE) for p in ingress)  # fmt: skip


def allowed_connections(docs: list[dict]) -> set[Connection]:
    """Every (source, destination, port, protocol) the policies let through, to or from the stack."""
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    ours = stack_endpoints(docs)
    ports = EXTRA_PORTS | {number for e in ours for number in e.ports.values()}
    result = set()
    for source in [*ours, KUBE_DNS, INGRESS_CONTROLLER, OTHER_TENANT]:
        for destination in [*ours, *SURROUNDINGS]:
            if source == destination or not (source.ours or destination.ours):
                continue
            for port in ports:
                for protocol in ("TCP", "UDP"):
                    if allowed(policies, source, destination, port, protocol):
                        result.add((source.name, destination.name, port, protocol))
    return result


def _env_values(docs: list[dict], container: dict) -> list[str]:
    """A container's environment values, ConfigMap references resolved."""
    data = {}
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            data.update({(doc["metadata"]["name"], k): v for k, v in (doc.get("data") or {}).items()})
    values = []
    for var in container.get("env", []):
        if "value" in var:
            values.append(var["value"])
        elif ref := (var.get("valueFrom") or {}).get("configMapKeyRef"):
            values.append(data.get((ref["name"], ref["key"]), ""))
    return values


def _service_targets(docs: list[dict], ours: list[Endpoint], service_name: str, port: int) -> list[tuple[str, int]]:
    (service,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == service_name]
    (entry,) = [p for p in service["spec"]["ports"] if p["port"] == port]
    targets = []
    for pod in ours:
        if selector_matches({"matchLabels": service["spec"]["selector"]}, pod.labels):
            target = entry.get("targetPort", port)
            targets.append((pod.name, pod.ports[target] if isinstance(target, str) else target))
    return targets


PRIVATE_RANGES = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")]


def _in_private_ranges(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return any(address.version == n.version and address in n for n in PRIVATE_RANGES)


def expected_connections(docs: list[dict]) -> set[Connection]:
    """The paths the stack uses, read from its own configuration, not from the policies.

    Every URL a container is configured with that names one of the stack's Services becomes a path
    to the pods behind it; a pod with such a path also needs DNS. The seeding job reaches the
    internet over HTTPS while OFFLINE=0. An Ingress opens its backend port to the controller.
    """
    ours = stack_endpoints(docs)
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    config = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("offline-agents-config")
    )
    result: set[Connection] = set()
    for pod in pod_templates(docs):
        for container in pod.containers():
            for value in _env_values(docs, container):
                url = urlsplit(value) if re.match(r"^https?://", value) else None
                if url and url.hostname in services:
                    for target, port in _service_targets(docs, ours, url.hostname, url.port or 80):
                        result.add((pod.ref, target, port, "TCP"))
    seeding = config["data"].get("OFFLINE") != "1"
    clients = {source for source, *_ in result} | ({"Job/ollama-seed"} if seeding else set())
    for client in clients:
        result |= {(client, KUBE_DNS.name, 53, "UDP"), (client, KUBE_DNS.name, 53, "TCP")}
    if seeding:
        result |= {("Job/ollama-seed", "internet-v4", 443, "TCP"), ("Job/ollama-seed", "internet-v6", 443, "TCP")}
    # A pod given an API token (the secrets Job) talks to the API server (its Service address, or
    # the control plane's own; the model's "node"), on 443 or 6443, by address: no DNS. Plain
    # NetworkPolicy cannot name the API server, so its policy allows the private ranges on those two
    # ports: other namespaces' pods listening there included.
    for pod in pod_templates(docs):
        if pod.spec.get("automountServiceAccountToken") is True:
            private = [e.name for e in SURROUNDINGS if not e.ours and _in_private_ranges(e.ip)]
            result |= {(pod.ref, address, port, "TCP") for address in private for port in (443, 6443)}
    for ingress in (d for d in docs if d["kind"] == "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                (service,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == backend["name"]]
                wanted = backend["port"]
                port = next(
                    p["port"]
                    for p in service["spec"]["ports"]
                    if p["name"] == wanted.get("name") or p["port"] == wanted.get("number")
                )
                for target, number in _service_targets(docs, ours, backend["name"], port):
                    result.add((INGRESS_CONTROLLER.name, target, number, "TCP"))
    return result
