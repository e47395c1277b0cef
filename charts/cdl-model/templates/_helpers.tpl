{{/*
Object names: the release name when it already names the model, else release-model; at most 40
characters, because the operators append their own suffixes (Seldon: -default-0-model-...).
*/}}
{{- define "cdl-model.fullname" -}}
{{- if contains .Values.model.name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Values.model.name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cdl-model.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cdl-model.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cdl-model.labels" -}}
{{ include "cdl-model.selectorLabels" . }}
helm.sh/chart: {{ include "cdl-model.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cdl
cdl.io/model: {{ .Values.model.name }}
cdl.io/model-version: {{ .Values.model.version | quote }}
{{- end -}}

{{/*
The V2 base URL of the model inside the cluster: the operator's service for the predictor.
*/}}
{{- define "cdl-model.url" -}}
{{- $name := include "cdl-model.fullname" . -}}
{{- if eq .Values.serving "seldon" -}}
http://{{ $name }}-default.{{ .Release.Namespace }}.svc:8000/v2/models/{{ .Values.model.name }}
{{- else -}}
http://{{ $name }}-predictor.{{ .Release.Namespace }}.svc/v2/models/{{ .Values.model.name }}
{{- end -}}
{{- end -}}

{{- define "cdl-model.restricted" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
{{- end -}}

{{/*
The pod both operators run: an init container copies the model folder from S3 into an
emptyDir, MLServer serves it. Arguments: root (the chart context), container (the name the
operator expects), http and grpc (the ports the operator routes to).
*/}}
{{- define "cdl-model.podSpec" -}}
{{- $ := .root -}}
{{- $path := trimPrefix "s3://" $.Values.model.uri | trimSuffix "/" -}}
securityContext:
  runAsNonRoot: true
  # the user of CDL's image (scripts/images/Containerfile)
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
initContainers:
  - name: fetch-model
    image: "{{ $.Values.fetcher.image.repository }}:{{ $.Values.fetcher.image.tag }}"
    imagePullPolicy: {{ $.Values.fetcher.image.pullPolicy | default "IfNotPresent" }}
    command: ["mc"]
    args: ["--config-dir", "/tmp/mc", "cp", "--recursive", "store/{{ $path }}/", "/mnt/models/{{ $.Values.model.name }}/"]
    env:
      - name: S3_ENDPOINT
        valueFrom:
          secretKeyRef: {name: {{ $.Values.storage.secretName }}, key: endpoint}
      - name: S3_ACCESS_KEY
        valueFrom:
          secretKeyRef: {name: {{ $.Values.storage.secretName }}, key: accessKey}
      - name: S3_SECRET_KEY
        valueFrom:
          secretKeyRef: {name: {{ $.Values.storage.secretName }}, key: secretKey}
      # mc reads the alias "store" from this variable; Kubernetes expands the $(...) above.
      - name: MC_HOST_store
        value: "{{ $.Values.storage.scheme }}://$(S3_ACCESS_KEY):$(S3_SECRET_KEY)@$(S3_ENDPOINT)"
    resources: {{- toYaml $.Values.fetcher.resources | nindent 6 }}
    securityContext: {{- include "cdl-model.restricted" $ | nindent 6 }}
    volumeMounts:
      - {name: models, mountPath: /mnt/models}
      - {name: scratch, mountPath: /tmp}
containers:
  - name: {{ .container }}
    image: "{{ $.Values.image.repository }}:{{ $.Values.image.tag }}"
    imagePullPolicy: {{ $.Values.image.pullPolicy | default "IfNotPresent" }}
    command: ["mlserver", "start", "/mnt/models"]
    env:
      - {name: MLSERVER_HTTP_PORT, value: {{ .http | quote }}}
      - {name: MLSERVER_GRPC_PORT, value: {{ .grpc | quote }}}
      # the root filesystem is read-only: MLServer's metrics files and any home go to /tmp
      - {name: MLSERVER_METRICS_DIR, value: /tmp/.metrics}
      - {name: HOME, value: /tmp}
      {{- with $.Values.scoring.secretName }}
      # Scoring Data: the runtime records each request in the use cases' database; without
      # the Secret the model serves all the same, recording nothing
      - name: CDL_SCORING_DSN
        valueFrom:
          secretKeyRef: {name: {{ . }}, key: dsn, optional: true}
      {{- end }}
    ports:
      - {name: http, containerPort: {{ .http }}, protocol: TCP}
    readinessProbe:
      httpGet: {path: /v2/health/ready, port: {{ .http }}}
      initialDelaySeconds: 5
      periodSeconds: 10
    livenessProbe:
      httpGet: {path: /v2/health/live, port: {{ .http }}}
      initialDelaySeconds: 30
      periodSeconds: 20
    resources:
      requests: {{- toYaml $.Values.resources.requests | nindent 8 }}
      limits: {{- toYaml $.Values.resources.limits | nindent 8 }}
        {{- if $.Values.gpu.enabled }}
        nvidia.com/gpu: {{ $.Values.gpu.count }}
        {{- end }}
    securityContext: {{- include "cdl-model.restricted" $ | nindent 6 }}
    volumeMounts:
      - {name: models, mountPath: /mnt/models, readOnly: true}
      - {name: scratch, mountPath: /tmp}
volumes:
  - {name: models, emptyDir: {}}
  - {name: scratch, emptyDir: {}}
{{- end -}}
