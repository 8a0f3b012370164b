{{/* Chart name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "dfns-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, plus the chart name unless the release already contains it. */}}
{{- define "dfns-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "dfns-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dfns-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dfns-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "dfns-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "dfns-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dfns-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "dfns-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding the key that seals recorded Dfns ids (docs/architecture.md, "Ownership"). */}}
{{- define "dfns-operator.sealKeySecret" -}}
{{- .Values.operator.sealKeySecret | default (printf "%s-seal-key" (include "dfns-operator.fullname" .)) -}}
{{- end }}

{{/*
What the operator does with namespaced objects: its credentials and connections, and the Secrets
next to them. Granted cluster-wide by the ClusterRole when it watches all namespaces, and only in
the watched namespace (role-watch-namespace.yaml) when operator.watchNamespace is set.
*/}}
{{- define "dfns-operator.namespacedRules" -}}
# Credentials: watched; finalizer added and removed with a JSON patch; status by server-side apply.
- apiGroups: ["dfns.io"]
  resources: ["dfnsserviceaccounts", "dfnspersonalaccesstokens"]
  verbs: ["get", "list", "watch", "patch"]
# Connections: watched and read; only their status is written.
- apiGroups: ["dfns.io"]
  resources: ["dfnsconnections"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["dfns.io"]
  resources:
    - dfnsserviceaccounts/status
    - dfnspersonalaccesstokens/status
    - dfnsconnections/status
  verbs: ["patch"]
# The Secrets it writes carry an ownerReference with blockOwnerDeletion, which the
# OwnerReferencesPermissionEnforcement admission plugin allows only with this.
- apiGroups: ["dfns.io"]
  resources: ["dfnsserviceaccounts/finalizers", "dfnspersonalaccesstokens/finalizers"]
  verbs: ["update"]
# Credential Secrets live next to their resources. The watch is filtered by the label
# app.kubernetes.io/managed-by=dfns-operator (RBAC cannot express label filters); Secrets it does
# not own are never modified. Connection Secrets are read with get.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "update", "delete"]
{{- if .Values.rbac.rolloutRestart }}
# rolloutRestartTargets: read, and their pod template's dfns.io/restartedAt patched once per
# switch of the Secret (--rollout-restarts).
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["get", "patch"]
{{- end }}
{{- end }}
