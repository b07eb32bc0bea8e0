//go:build race

package main

import "time"

// floodP99 bounds the valid Checks' p99 during the unknown-kid flood. The race detector slows everything
// several times over, and the machine is shared.
const floodP99 = 250 * time.Millisecond
