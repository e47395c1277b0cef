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

{{/*
The pod spec of both the hook Job and the `helm test` pod: `cdl smoke --plan` in CDL's image,
the plan from the ConfigMap, nothing writable but /tmp, no service account token (the checks
need no Kubernetes API).
*/}}
{{- define "cdl-smoke.podSpec" -}}
restartPolicy: Never
automountServiceAccountToken: false
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
containers:
  - name: smoke
    image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
    imagePullPolicy: {{ .Values.image.pullPolicy | default "IfNotPresent" }}
    command: ["cdl", "smoke", "--plan", "/etc/cdl-smoke/plan.json"]
    env:
      - {name: HOME, value: /tmp}
      - {name: CDL_HOME, value: /tmp/cdl}
    resources: {{- toYaml .Values.resources | nindent 6 }}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities:
        drop: [ALL]
    volumeMounts:
      - {name: plan, mountPath: /etc/cdl-smoke, readOnly: true}
      - {name: scratch, mountPath: /tmp}
volumes:
  - name: plan
    configMap:
      name: {{ include "cdl-smoke.fullname" . }}
      items:
        - {key: plan.json, path: plan.json}
  - {name: scratch, emptyDir: {}}
{{- end -}}
