{{/* The Service ports; appProtocol tells Istio and Gateway implementations the grpc port is HTTP/2. */}}
{{- define "cognito-authz.servicePorts" -}}
- name: grpc
  port: {{ .Values.ports.grpc }}
  targetPort: grpc
  protocol: TCP
  appProtocol: grpc
{{- if .Values.ports.http.enabled }}
- name: http-authz
  port: {{ .Values.ports.http.port }}
  targetPort: http-authz
  protocol: TCP
  appProtocol: http
{{- end }}
- name: http-admin
  port: {{ .Values.ports.admin }}
  targetPort: http-admin
  protocol: TCP
  appProtocol: http
{{- end }}
