package main

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	ma "github.com/multiformats/go-multiaddr"
)

// checkListenPorts binds the port of each listen address for a moment, so
// that one another process holds is refused naming it, before the node
// starts. libp2p binds TCP ports with SO_REUSEPORT, so without this check a
// second node of the same user could share the port of a running one and
// get half of its connections. Port 0 and DNS addresses are left to libp2p.
func checkListenPorts(listen []string, source string) error {
	for _, s := range listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			continue // Validate has refused it already
		}
		host, err := a.ValueForProtocol(ma.P_IP4)
		if err != nil {
			if host, err = a.ValueForProtocol(ma.P_IP6); err != nil {
				continue
			}
		}
		network := "tcp"
		port, err := a.ValueForProtocol(ma.P_TCP)
		if err != nil {
			network = "udp"
			if port, err = a.ValueForProtocol(ma.P_UDP); err != nil {
				continue
			}
		}
		if port == "0" {
			continue
		}
		addr := net.JoinHostPort(host, port)
		if network == "tcp" {
			var l net.Listener
			if l, err = net.Listen("tcp", addr); err == nil {
				_ = l.Close()
			}
		} else {
			var c net.PacketConn
			if c, err = net.ListenPacket("udp", addr); err == nil {
				_ = c.Close()
			}
		}
		if err != nil {
			return portError(err, "listen address "+s, source, "--listen, FINP2P_LISTEN or config.json's listen")
		}
	}
	return nil
}

// portError explains a failure to bind what (an address, named) whose value
// came from source: a port in use says to pick another or stop the process
// that holds it, naming where the port is set.
func portError(err error, what, source, setIn string) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s (from %s): the port is already in use by another process: pick another port (%s) or stop the process that holds it: %w",
			what, source, setIn, err)
	}
	return fmt.Errorf("%s (from %s): %w", what, source, err)
}
