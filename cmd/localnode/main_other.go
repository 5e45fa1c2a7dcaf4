//go:build !linux

// Command localnode runs on Linux only: it relies on all of 127.0.0.0/8 being
// local and on Linux process control (subreapers, Pdeathsig). See
// docs/localnode.md.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "localnode: Linux only (pod IPs are 127.x addresses and processes are supervised with Linux features)")
	os.Exit(1)
}
