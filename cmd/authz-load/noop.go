package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
	"github.com/cognito-authz/cognito-authz/pkg/server"
)

// noop is the floor: an Authorization service that reads nothing and answers OK with an empty
// OkHttpResponse.
type noop struct {
	authv3.UnimplementedAuthorizationServer
}

func (noop) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
	}, nil
}

// serveNoop serves noop on addr with the service's own server package (same gRPC options and codec, health
// and reflection), prints the bound address and serves until ctx ends.
func serveNoop(ctx context.Context, addr string, out io.Writer) error {
	srv, err := server.Listen(ctx, server.Options{GRPCAddr: addr, AdminAddr: "127.0.0.1:0", Register: func(g *grpc.Server) { authv3.RegisterAuthorizationServer(g, noop{}) },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), GRPCOptions: []grpc.ServerOption{extauthz.CodecOption()}})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "listening %s\n", srv.GRPCAddr())
	return srv.Serve(ctx)
}
