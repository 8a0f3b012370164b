//! The operator end to end, as its users meet it: against a real kube-apiserver, etcd and
//! kube-controller-manager (one shared control plane, a namespace per test) and the in-process
//! Dfns emulator. One test binary; a module per scenario.

mod approvals;
mod blocked_cleanup;
mod chart_rbac;
mod cluster_connections;
mod cluster_smoke;
mod connection_changes;
mod connection_rules;
mod cost;
mod crash_points;
mod crash_safety;
mod credentials;
mod expiry;
mod fairness;
mod fencing;
mod guards;
mod hostile_endpoints;
mod key_rotation;
mod leader_election;
mod leader_lost;
mod leak_check;
mod lifecycle;
mod login_keys;
mod lost_answers;
mod renewal;
mod rollout_restart;
mod shutdown;
mod stale_cache;
mod tenant_isolation;
mod tls;
mod token_connections;
mod unasked_permissions;
mod workload_probe;
