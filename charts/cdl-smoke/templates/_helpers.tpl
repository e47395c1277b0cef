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
The pod spec of both the hook Job and the `helm test` pod: the smoke script from the ConfigMap,
the plan in its environment, nothing writable but /tmp, no service account token.
*/}}
{{- define "cdl-smoke.podSpec" -}}
restartPolicy: Never
automountServiceAccountToken: false
securityContext:
  runAsNonRoot: true
  runAsUser: 65534
  runAsGroup: 65534
  seccompProfile:
    type: RuntimeDefault
containers:
  - name: smoke
    image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
    imagePullPolicy: {{ .Values.image.pullPolicy | default "IfNotPresent" }}
    command: ["python", "/opt/cdl-smoke/smoke.py"]
    env:
      - name: PLAN
        valueFrom:
          configMapKeyRef: {name: {{ include "cdl-smoke.fullname" . }}, key: plan.json}
    resources: {{- toYaml .Values.resources | nindent 6 }}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities:
        drop: [ALL]
    volumeMounts:
      - {name: script, mountPath: /opt/cdl-smoke, readOnly: true}
      - {name: scratch, mountPath: /tmp}
volumes:
  - name: script
    configMap:
      name: {{ include "cdl-smoke.fullname" . }}
      items:
        - {key: smoke.py, path: smoke.py}
  - {name: scratch, emptyDir: {}}
{{- end -}}
