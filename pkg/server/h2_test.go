package server_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2client is a raw HTTP/2 client that does what an attacker does and a gRPC client never would: opens
// streams without finishing their messages. It honours flow control (so the server has no protocol reason
// to close the connection) and records how the server ended each stream.
type h2client struct {
	t   *testing.T
	c   net.Conn
	fr  *http2.Framer
	wmu sync.Mutex // guards writes on fr

	mu         sync.Mutex
	cond       *sync.Cond
	connWin    int64
	initWin    int64
	streamWin  map[uint32]int64
	ended      map[uint32]string // stream → "rst:CODE" or "grpc-status:N"
	pingAcks   int
	readErr    error
	maxStreams uint32
}

// dialH2 connects to a gRPC listener and exchanges the prefaces. failsafe bounds the whole exchange: a
// server that never answers makes the test fail instead of hang.
func dialH2(t *testing.T, addr string, failsafe time.Duration) *h2client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(failsafe))
	h := &h2client{t: t, c: c, fr: http2.NewFramer(c, c), connWin: 65535, initWin: 65535,
		streamWin: map[uint32]int64{}, ended: map[uint32]string{}, maxStreams: ^uint32(0)}
	h.cond = sync.NewCond(&h.mu)
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	if err := h.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	go h.read()
	h.ping() // the server's SETTINGS have been read by the time its ping ack arrives
	return h
}

func (h *h2client) read() {
	for {
		f, err := h.fr.ReadFrame()
		h.mu.Lock()
		if err != nil {
			h.readErr = err
			h.cond.Broadcast()
			h.mu.Unlock()
			return
		}
		var reply func() error
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
					// A change applies to every open stream's window too (RFC 9113 section 6.9.2); gRPC's
					// BDP estimator raises it while data flows.
					for id := range h.streamWin {
						h.streamWin[id] += int64(v) - h.initWin
					}
					h.initWin = int64(v)
				}
				if v, ok := f.Value(http2.SettingMaxConcurrentStreams); ok {
					h.maxStreams = v
				}
				reply = h.fr.WriteSettingsAck
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				h.connWin += int64(f.Increment)
			} else {
				h.streamWin[f.StreamID] += int64(f.Increment)
			}
		case *http2.PingFrame:
			if f.IsAck() {
				h.pingAcks++
			} else {
				data := f.Data
				reply = func() error { return h.fr.WritePing(true, data) }
			}
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				if _, done := h.ended[f.StreamID]; !done {
					st := "grpc-status:none"
					for _, hf := range f.Fields {
						if hf.Name == "grpc-status" {
							st = "grpc-status:" + hf.Value
						}
					}
					h.ended[f.StreamID] = st
				}
			}
		case *http2.RSTStreamFrame:
			if _, done := h.ended[f.StreamID]; !done {
				h.ended[f.StreamID] = "rst:" + f.ErrCode.String()
			}
		}
		h.cond.Broadcast()
		h.mu.Unlock()
		if reply != nil {
			h.wmu.Lock()
			err := reply()
			h.wmu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

// ping sends a PING and waits for its ack: every frame sent before it has then been read by the server,
// and everything the server wrote in answer to them has been read here.
func (h *h2client) ping() {
	h.t.Helper()
	h.mu.Lock()
	want := h.pingAcks + 1
	h.mu.Unlock()
	h.wmu.Lock()
	err := h.fr.WritePing(false, [8]byte{1})
	h.wmu.Unlock()
	if err != nil {
		h.t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.pingAcks < want && h.readErr == nil {
		h.cond.Wait()
	}
	if h.pingAcks < want {
		h.t.Fatalf("no ping ack: %v", h.readErr)
	}
}

// open sends the HEADERS of a Check call on stream id, without ending the stream.
func (h *h2client) open(id uint32) {
	h.t.Helper()
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", "/envoy.service.auth.v3.Authorization/Check"},
		{":authority", "authz"}, {"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	h.mu.Lock()
	h.streamWin[id] += h.initWin
	h.mu.Unlock()
	h.wmu.Lock()
	defer h.wmu.Unlock()
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: buf.Bytes(), EndHeaders: true}); err != nil {
		h.t.Fatal(err)
	}
}

// send writes the gRPC length prefix of a message of declared bytes and then sent bytes of it, as flow
// control allows, without ending the stream. It stops early if the server ends the stream.
func (h *h2client) send(id uint32, declared, sent int) {
	h.t.Helper()
	msg := make([]byte, 5+sent)
	binary.BigEndian.PutUint32(msg[1:5], uint32(declared))
	for len(msg) > 0 {
		n := min(len(msg), 16384)
		h.mu.Lock()
		for (h.connWin < int64(n) || h.streamWin[id] < int64(n)) && h.ended[id] == "" && h.readErr == nil {
			h.cond.Wait()
		}
		if h.ended[id] != "" || h.readErr != nil {
			h.mu.Unlock()
			return
		}
		h.connWin -= int64(n)
		h.streamWin[id] -= int64(n)
		h.mu.Unlock()
		h.wmu.Lock()
		err := h.fr.WriteData(id, false, msg[:n])
		h.wmu.Unlock()
		if err != nil {
			h.t.Fatal(err)
		}
		msg = msg[n:]
	}
}

// settingMaxStreams is the server's SETTINGS_MAX_CONCURRENT_STREAMS.
func (h *h2client) settingMaxStreams() uint32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.maxStreams
}

// endings returns how each stream has ended so far ("" for streams still open).
func (h *h2client) endings(ids []uint32) map[uint32]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[uint32]string{}
	for _, id := range ids {
		out[id] = h.ended[id]
	}
	return out
}

// waitEnded waits until the server has ended every stream in ids, and returns how each ended. It fails
// the test if the connection fails first (the failsafe deadline included).
func (h *h2client) waitEnded(ids []uint32) map[uint32]string {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for {
		open := 0
		for _, id := range ids {
			if h.ended[id] == "" {
				open++
			}
		}
		if open == 0 {
			break
		}
		if h.readErr != nil {
			h.t.Fatalf("%d of %d streams never ended by the server: %v", open, len(ids), h.readErr)
		}
		h.cond.Wait()
	}
	out := map[uint32]string{}
	for _, id := range ids {
		out[id] = h.ended[id]
	}
	return out
}

// count tallies endings by kind.
func count(endings map[uint32]string) map[string]int {
	out := map[string]int{}
	for _, e := range endings {
		out[e]++
	}
	return out
}

// streamIDs returns n client stream ids starting after the first `from` ones.
func streamIDs(from, n int) []uint32 {
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(2*(from+i) + 1)
	}
	return ids
}

func describe(m map[string]int) string { return fmt.Sprintf("%v", m) }
