//go:build !race

package main

import "time"

// floodP99 bounds the valid Checks' p99 during the unknown-kid flood.
const floodP99 = 50 * time.Millisecond
