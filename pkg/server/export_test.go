package server

// Stopping is closed when the drain ends and the gRPC listener closes: Checks sent before it must all
// succeed.
func (s *Server) Stopping() <-chan struct{} { return s.stopping }

// BreakGRPCListener closes the gRPC listener under a serving Server, as a failing socket would.
func (s *Server) BreakGRPCListener() error { return s.gln.Close() }
