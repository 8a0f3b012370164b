//! The Helm chart: what it renders, checked against the real API server, and its Argo CD health
//! check. One test binary.

mod argocd_health;
mod render;
