{{- define "cdl-smoke.fullname" -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "cdl-smoke.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cdl-smoke.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ include "cdl-smoke.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cdl
{{- end -}}

{{- define "cdl-smoke.restricted" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/*
`cdl smoke --plan` in CDL's image: the plan from the ConfigMap, nothing writable but /tmp.
*/}}
{{- define "cdl-smoke.planContainer" -}}
name: {{ .name }}
image: "{{ .root.Values.image.repository }}:{{ .root.Values.image.tag }}"
imagePullPolicy: {{ .root.Values.image.pullPolicy | default "IfNotPresent" }}
command: ["cdl", "smoke", "--plan", "/etc/cdl-smoke/plan.json"]
env:
  - {name: HOME, value: /tmp}
  - {name: CDL_HOME, value: /tmp/cdl}
resources: {{- toYaml .root.Values.resources | nindent 2 }}
securityContext: {{- include "cdl-smoke.restricted" . | nindent 2 }}
volumeMounts:
  - {name: plan, mountPath: /etc/cdl-smoke, readOnly: true}
  - {name: scratch, mountPath: /tmp}
{{- end -}}

{{/*
The pod spec of the hook Job ("train": true) and of the `helm test` pod. Without
train.enabled both run `cdl smoke --plan` alone, with no service account token (the checks
need no Kubernetes API). With it the Job runs the plan as an init container, then
`cdl smoke --outputs` under the release's service account, whose Role reaches the models'
namespace only; its credentials come from Secrets, its state goes to the scratch emptyDir.
*/}}
{{- define "cdl-smoke.podSpec" -}}
{{- $train := and .train .root.Values.train.enabled -}}
{{- with .root -}}
restartPolicy: Never
{{- if $train }}
serviceAccountName: {{ include "cdl-smoke.fullname" . }}
automountServiceAccountToken: true
{{- else }}
automountServiceAccountToken: false
{{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- if $train }}
initContainers:
  - {{ include "cdl-smoke.planContainer" (dict "root" . "name" "plan") | nindent 4 | trim }}
  # The raw BBC articles, from their publisher (or train.bbcUrl), verified by their content;
  # Fashion-MNIST is in the image (Debian's dataset-fashion-mnist).
  - name: data
    image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
    imagePullPolicy: {{ .Values.image.pullPolicy | default "IfNotPresent" }}
    command: ["cdl", "data", "fetch", "bbc", "--dest", "/tmp/datasets"]
    env:
      - {name: HOME, value: /tmp}
      - {name: CDL_HOME, value: /tmp/cdl}
      {{- with .Values.train.bbcUrl }}
      - {name: CDL_BBC_URL, value: {{ . | quote }}}
      {{- end }}
    resources: {{- toYaml .Values.resources | nindent 6 }}
    securityContext: {{- include "cdl-smoke.restricted" . | nindent 6 }}
    volumeMounts:
      - {name: scratch, mountPath: /tmp}
containers:
  - name: smoke
    image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
    imagePullPolicy: {{ .Values.image.pullPolicy | default "IfNotPresent" }}
    command: ["cdl", "smoke", "--outputs", "/etc/cdl-smoke/platform.json"{{ if .Values.train.keep }}, "--keep"{{ end }}]
    env:
      - {name: HOME, value: /tmp}
      - {name: CDL_HOME, value: /tmp/cdl}
      - {name: CDL_DATASETS, value: /tmp/datasets}
      # Release records as ConfigMaps: the service account needs no access to Secrets.
      - {name: HELM_DRIVER, value: configmap}
      {{- range .Values.env }}
      - name: {{ .name }}
        valueFrom:
          secretKeyRef:
            name: {{ .secretName }}
            key: {{ .key }}
            {{- if hasKey . "optional" }}
            optional: {{ .optional }}
            {{- end }}
      {{- end }}
    resources: {{- toYaml .Values.train.resources | nindent 6 }}
    securityContext: {{- include "cdl-smoke.restricted" . | nindent 6 }}
    volumeMounts:
      - {name: plan, mountPath: /etc/cdl-smoke, readOnly: true}
      - {name: scratch, mountPath: /tmp}
{{- else }}
containers:
  - {{ include "cdl-smoke.planContainer" (dict "root" . "name" "smoke") | nindent 4 | trim }}
{{- end }}
volumes:
  - name: plan
    configMap:
      name: {{ include "cdl-smoke.fullname" . }}
      items:
        - {key: plan.json, path: plan.json}
        {{- if $train }}
        - {key: platform.json, path: platform.json}
        {{- end }}
  - {name: scratch, emptyDir: {}}
{{- end -}}
{{- end -}}
