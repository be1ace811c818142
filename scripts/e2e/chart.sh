# Installing hoard with its Helm chart (deploy/helm/hoard), for the e2e
# suites (sourced; needs lib.sh, and kubectl and KUBECONFIG set up as
# cluster.sh does). A suite installs with chart_install RELEASE VALUES...
# (each a -f file or --set), waits with hoard_ready and removes it with
# chart_uninstall.

HELM=${HELM:-$HOARD_CACHE/bin/helm}
CHART_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../deploy/helm/hoard" && pwd)
HOARD_NS=${HOARD_NS:-hoard-system}
# The components a default install runs (app.kubernetes.io/component).
HOARD_COMPONENTS=(controller node mounter worker coordinator)

# helm ARGS...: bounded, with no user's helm settings.
helm() {
  HELM_CACHE_HOME=$RUN/helm HELM_CONFIG_HOME=$RUN/helm HELM_DATA_HOME=$RUN/helm \
    timeout 300 "$HELM" --kubeconfig "$KUBECONFIG" "$@"
}

# chart_install RELEASE HELM_ARGS...: installs the chart into $HOARD_NS
# (created if missing) without waiting; hoard_ready waits.
chart_install() {
  local release=$1; shift
  [ -x "$HELM" ] || die "no helm at $HELM: run make tools (scripts/install-tools.sh)"
  # The controller's volume ID key (deletePolicy: delete needs it), made
  # before the controller starts.
  kubectl get namespace "$HOARD_NS" >/dev/null 2>&1 || kubectl create namespace "$HOARD_NS" >/dev/null
  kubectl -n "$HOARD_NS" get secret hoard-volume-id-key >/dev/null 2>&1 ||
    kubectl -n "$HOARD_NS" create secret generic hoard-volume-id-key \
      --from-literal=key="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >/dev/null
  helm install "$release" "$CHART_DIR" --namespace "$HOARD_NS" "$@" >"$RUN/logs/helm-install.log" ||
    { cat "$RUN/logs/helm-install.log" >&2; return 1; }
}

# chart_uninstall RELEASE: helm uninstall, waiting for the pods to go.
chart_uninstall() {
  helm uninstall "$1" --namespace "$HOARD_NS" --wait --timeout 120s >"$RUN/logs/helm-uninstall.log" ||
    { cat "$RUN/logs/helm-uninstall.log" >&2; return 1; }
}

# hoard_ready [COMPONENT...]: every pod of each component (default: all of
# a default install) exists and all its containers are ready.
hoard_ready() {
  local c comps=("$@")
  [ ${#comps[@]} -gt 0 ] || comps=("${HOARD_COMPONENTS[@]}")
  for c in "${comps[@]}"; do
    kubectl -n "$HOARD_NS" get pods -l "app.kubernetes.io/component=$c" \
      -o jsonpath='{range .items[*]}{.status.containerStatuses[*].ready}{"\n"}{end}' |
      grep -Eqx 'true( true)*' || return 1
  done
}

# hoard_pod COMPONENT: the name of the component's first pod.
hoard_pod() {
  kubectl -n "$HOARD_NS" get pods -l "app.kubernetes.io/component=$1" -o jsonpath='{.items[0].metadata.name}'
}
