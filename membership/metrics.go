package membership

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	handshakes     *prometheus.CounterVec
	refusedStreams *prometheus.CounterVec
	members        prometheus.GaugeFunc
	blocked        prometheus.GaugeFunc
}

func newMetrics(s *Service) *metrics {
	return &metrics{
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "finp2p_membership_handshakes_total",
			Help: "Membership handshakes by outcome (verified, refused).",
		}, []string{"outcome"}),
		refusedStreams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "finp2p_membership_refused_streams_total",
			Help: "Streams refused because the peer had not proved membership or was blocked, by protocol.",
		}, []string{"protocol"}),
		members: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "finp2p_members_connected",
			Help: "Verified members this node is connected to.",
		}, func() float64 { return float64(len(s.Members())) }),
		blocked: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "finp2p_membership_blocked_peers",
			Help: "Peers currently blocked (failed handshake or revoked).",
		}, func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			n := 0
			for p := range s.blocked {
				if _, ok := s.blockedLocked(p); ok {
					n++
				}
			}
			return float64(n)
		}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.handshakes, m.refusedStreams, m.members, m.blocked} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
