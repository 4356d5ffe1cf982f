{{/* Names and labels, the usual Helm shape. */}}

{{- define "bertsweep.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bertsweep.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "bertsweep.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The operator's pods. Trial pods carry app.kubernetes.io/name=bertsweep-trial, never
this chart's name, so the Deployment and Service never select them. */}}
{{- define "bertsweep.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bertsweep.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "bertsweep.labels" -}}
helm.sh/chart: {{ include "bertsweep.chart" . }}
{{ include "bertsweep.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "bertsweep.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "bertsweep.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "bertsweep.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
What the operator does in a namespace it serves, and nothing more. Each rule is one of the
operator's own calls (operator/bertsweep/kube.py) or one of kopf's (handlers.py registers only
@kopf.on.event handlers, which write nothing, and runs standalone, without peering objects):

- bertsweeps get/list/watch: kopf's watch stream (list + watch) and kube.get_sweep (get).
  No patch or update: the operator never writes a sweep's spec or metadata (no finalizers,
  no kopf annotations).
- bertsweeps/status update: kube.replace_sweep_status, a PUT carrying the resourceVersion read.
- berttrials get/list/create: kube.list_trials (list), kube.create_trial (create, and get when
  the create meets 409). Nothing watches trials and nothing deletes them (the garbage
  collector does, through ownerReferences).
- berttrials/status update: kube.replace_trial_status (PUT).
- bertsweeps/finalizers, berttrials/finalizers update: the operator sets blockOwnerDeletion on
  the ownerReferences of trials (owner: sweep) and pods (owner: trial); with the
  OwnerReferencesPermissionEnforcement admission plugin (OpenShift enables it) that requires
  update on the owner's finalizers subresource. Nothing else is written there.
- pods get/list/watch/create/delete: kopf's watch of trial pods, kube.live_pods (list),
  kube.get_pod, kube.create_pod, kube.delete_pod (early stopping, sweep end).
- events create: kube.post_event and kopf's own warning Events, both POSTs to the core v1
  API (neither patches Events, nor uses events.k8s.io).
*/}}
{{- define "bertsweep.rules" -}}
- apiGroups: [tuning.bertsweep.io]
  resources: [bertsweeps]
  verbs: [get, list, watch]
- apiGroups: [tuning.bertsweep.io]
  resources: [bertsweeps/status]
  verbs: [update]
- apiGroups: [tuning.bertsweep.io]
  resources: [berttrials]
  verbs: [get, list, watch, create]
- apiGroups: [tuning.bertsweep.io]
  resources: [berttrials/status]
  verbs: [update]
- apiGroups: [tuning.bertsweep.io]
  resources: [bertsweeps/finalizers, berttrials/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{/*
kopf's cluster observation (kopf/_core/reactor/observation.py), read-only:
- customresourcedefinitions list/watch: kopf watches CRDs to notice resources added or removed
  at run time (always, cluster-wide or not).
- namespaces list/watch: only when the operator serves named namespaces; kopf lists them to
  match its namespace patterns and watches them to follow namespaces appearing later.
Without them kopf logs a warning and carries on with what it found at start.
*/}}
{{- define "bertsweep.scanningRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- if .Values.watchNamespaces }}
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}
{{- end -}}
