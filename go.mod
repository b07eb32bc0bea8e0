module github.com/cognito-authz/cognito-authz

go 1.26.8

require go.yaml.in/yaml/v3 v3.0.6

require (
	github.com/MicahParks/jwkset v0.11.3 // indirect
	github.com/MicahParks/keyfunc/v3 v3.9.0 // indirect
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	github.com/google/go-cmp v0.7.0 // indirect
	golang.org/x/time v0.15.0 // indirect
)
