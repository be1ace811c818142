// Package chart tests the Helm chart in deploy/helm/hoard with the real helm
// (installed by scripts/install-tools.sh into $HOARD_CACHE/bin): it lints,
// renders it with the default values and with the ones users and the e2e
// suite set, and checks what every install must hold (probes, resources and
// GOMEMLIMIT on every container, non-root where no privilege is needed, no
// host network by default, a PodDisruptionBudget for the coordinator,
// clients pointed at the coordinator), that bad values fail with a message
// naming the value, and that deploy/kubernetes is the chart's output.
package chart
