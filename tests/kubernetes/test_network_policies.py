"""The NetworkPolicies allow exactly the paths the stack uses, and nothing leaves the cluster offline.

The allowed set is computed from the policies (network_policy.allowed_connections); the expected
set from the stack's own configuration (the URLs each container is given, the Ingress, OFFLINE).
Both are also compared with the list written down in base/network-policies.yaml.
"""

from __future__ import annotations

import copy

import pytest
from kubernetes import network_policy as netpol
from kubernetes.manifests import VARIANTS

DNS = "kube-system/coredns"
TERMINAL, PLAN, MCP = "Deployment/orchestrator", "Job/orchestrator-plan", "Deployment/mcp-server"
OLLAMA, DASHBOARD, SEED = "Deployment/ollama", "Deployment/aspire-dashboard", "Job/ollama-seed"

# base/network-policies.yaml, header comment, as connections.
STACK_PATHS = {
    *{(client, OLLAMA, 11434, "TCP") for client in (TERMINAL, PLAN)},
    *{(client, MCP, 8090, "TCP") for client in (TERMINAL, PLAN)},
    *{(client, DASHBOARD, 18889, "TCP") for client in (TERMINAL, PLAN, MCP)},
    *{(client, DNS, 53, protocol) for client in (TERMINAL, PLAN, MCP) for protocol in ("UDP", "TCP")},
}
SEEDING_PATHS = {
    (SEED, DNS, 53, "UDP"), (SEED, DNS, 53, "TCP"),
    (SEED, "internet-v4", 443, "TCP"), (SEED, "internet-v6", 443, "TCP"),
}  # fmt: skip
SECRETS = "Job/secrets"
# The secrets Job creates the Secret through the API server (its Service address, or the control
# plane node's own), on 443 or 6443.
# Plain NetworkPolicy cannot name the API server: private addresses on 443 and 6443, which lets the
# Job reach other namespaces' pods on those ports too (written down in the policy and the guide).
API_PEERS = {*netpol.API_SERVER, DNS, "ingress-nginx/controller", "default/other-app"}
STACK_PATHS |= {(SECRETS, address, port, "TCP") for address in API_PEERS for port in (443, 6443)}
INGRESS_PATHS = {("ingress-nginx/controller", DASHBOARD, 18888, "TCP")}
WRITTEN_DOWN = {
    "cpu": STACK_PATHS | SEEDING_PATHS,
    "gpu": STACK_PATHS | SEEDING_PATHS,
    "cpu-offline": STACK_PATHS,
    "air-gapped-gpu-cluster": STACK_PATHS | INGRESS_PATHS,
}
OUTSIDE = {e.name for e in netpol.ADDRESSES} - set(netpol.API_SERVER)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_exactly_the_paths_the_stack_uses_are_open(rendered, variant):
    docs = rendered.docs[variant]
    allowed = netpol.allowed_connections(docs)
    expected = netpol.expected_connections(docs)
    assert allowed - expected == set(), "open but unused"
    assert expected - allowed == set(), "used but closed"
    assert allowed == WRITTEN_DOWN[variant]


@pytest.mark.parametrize("variant", ["cpu-offline", "air-gapped-gpu-cluster"])
def test_offline_nothing_leaves_the_cluster(rendered, variant):
    allowed = netpol.allowed_connections(rendered.docs[variant])
    assert {c for c in allowed if c[1] in OUTSIDE} == set()
    assert "ollama-seed-internet-egress" not in {d["metadata"]["name"] for d in rendered.docs[variant]
                                                 if d["kind"] == "NetworkPolicy"}  # fmt: skip


def test_online_only_the_seeding_job_leaves_the_cluster_and_only_over_https(cpu):
    leaving = {c for c in netpol.allowed_connections(cpu) if c[1] in OUTSIDE}
    assert leaving == {(SEED, "internet-v4", 443, "TCP"), (SEED, "internet-v6", 443, "TCP")}


def test_other_namespaces_cannot_reach_the_stack_even_with_matching_labels(cpu):
    # The stand-in tenant pod carries app.kubernetes.io/name=ollama, like our Ollama pods.
    assert not {c for c in netpol.allowed_connections(cpu) if c[0] == netpol.OTHER_TENANT.name}


# --- negative tests: the computation sees a policy that opens too much or too little -------------


def test_an_allow_all_egress_policy_is_caught(cpu):
    docs = [*copy.deepcopy(cpu), {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-all-egress", "namespace": "offline-agents"},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]},
    }]  # fmt: skip
    extra = netpol.allowed_connections(docs) - netpol.expected_connections(docs)
    assert (OLLAMA, "internet-v4", 443, "TCP") in extra
    assert (DASHBOARD, "cloud-metadata", 80, "TCP") in extra


def test_a_missing_dns_policy_is_caught(cpu):
    docs = [d for d in copy.deepcopy(cpu) if d["metadata"]["name"] != "allow-dns"]
    missing = netpol.expected_connections(docs) - netpol.allowed_connections(docs)
    assert missing == {(client, DNS, 53, p) for client in (TERMINAL, PLAN, MCP) for p in ("UDP", "TCP")}


def test_a_widened_port_is_caught(cpu):
    docs = copy.deepcopy(cpu)
    (policy,) = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "ollama"]
    policy["spec"]["ingress"][0].pop("ports")
    (rule,) = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "orchestrator"]
    rule["spec"]["egress"][0]["ports"] = [{"protocol": "TCP", "port": 1, "endPort": 65535}]
    extra = netpol.allowed_connections(docs) - netpol.expected_connections(docs)
    assert (TERMINAL, OLLAMA, 22, "TCP") in extra


# --- the semantics of the model itself --------------------------------------------------------------


def _pod(name, namespace, labels, ip="10.244.5.5"):
    return netpol.Endpoint(name, ip, namespace, {"kubernetes.io/metadata.name": namespace}, labels, {"http": 8080})


def test_namespace_and_pod_selectors_in_one_peer_are_anded_and_peers_are_ored():
    same_peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "a"}},
                 "podSelector": {"matchLabels": {"role": "db"}}}  # fmt: skip
    assert netpol.peer_matches(same_peer, _pod("a/db", "a", {"role": "db"}), "x")
    assert not netpol.peer_matches(same_peer, _pod("a/web", "a", {"role": "web"}), "x")
    assert not netpol.peer_matches(same_peer, _pod("b/db", "b", {"role": "db"}), "x")
    pod_only = {"podSelector": {"matchLabels": {"role": "db"}}}
    assert netpol.peer_matches(pod_only, _pod("x/db", "x", {"role": "db"}), "x")
    assert not netpol.peer_matches(pod_only, _pod("b/db", "b", {"role": "db"}), "x")


def test_ip_blocks_honour_their_exceptions_and_address_families():
    block = {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}
    assert netpol.peer_matches(block, netpol.Endpoint("i", "93.184.216.34"), "x")
    assert not netpol.peer_matches(block, netpol.Endpoint("p", "10.1.2.3"), "x")
    assert not netpol.peer_matches(block, netpol.Endpoint("v6", "2606:2800:220:1::1"), "x")


def test_ports_match_by_protocol_range_and_name():
    destination = _pod("x/web", "x", {})
    assert netpol.port_matches([{"port": "http"}], 8080, "TCP", destination)
    assert not netpol.port_matches([{"port": 8080, "protocol": "UDP"}], 8080, "TCP", destination)
    assert netpol.port_matches([{"port": 8000, "endPort": 9000}], 8080, "TCP", destination)
    assert netpol.port_matches(None, 1, "UDP", destination)
