package mqtt

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/internal/mosquittotest"
	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks"
	"github.com/edgepoll/edgepoll/sinks/contract"
)

const contractTopic = "edge/contract"

// subscribers are the test's subscribers on the topic, one per broker
// start (a restarted broker has no sessions).
type subscribers struct {
	mu   sync.Mutex
	subs []*mosquittotest.Subscriber
}

func (s *subscribers) add(t *testing.T, port int) {
	sub := mosquittotest.Subscribe(t, port, contractTopic, 1)
	s.mu.Lock()
	s.subs = append(s.subs, sub)
	s.mu.Unlock()
}

func (s *subscribers) items() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, sub := range s.subs {
		for _, p := range sub.Got() {
			out = append(out, itemID(p))
		}
	}
	return out
}

// The target is a real mosquitto, QoS 1 (every item acknowledged), with a
// Maximum Packet Size of 4 KiB: a larger item is refused (permanent; the
// broker would drop the connection over it). Break kills the broker (Check
// sees it) until repair starts it again on the same port; Hang freezes it
// (SIGSTOP).
func TestContract(t *testing.T) {
	contract.Run(t, contract.Harness{
		New: func(t *testing.T) contract.Target {
			b := mosquittotest.Start(t, "allow_anonymous true\nmax_packet_size 4096")
			subs := &subscribers{}
			subs.add(t, b.Port)
			o := Registration.New().(*Options)
			o.Host, o.Port, o.QoS, o.ConnectTimeout = "127.0.0.1", b.Port, 1, 5*time.Second
			sh := sinks.Shared{Topic: contractTopic}
			s := contract.Open(t, o, sh, sinks.Env{})
			return contract.Target{
				Sink:     s,
				Received: subs.items,
				Hang:     b.Freeze,
				Break: func() func() {
					b.Kill()
					return func() { b.Restart(); subs.add(t, b.Port) }
				},
			}
		},
		Refused: func(ev poll.Event) poll.Event {
			return poll.NewEvent(ev.ID, []byte(`{"id":"alert-x","pad":"`+strings.Repeat("x", 5000)+`"}`))
		},
		Pipelined:      true,
		CheckSeesBreak: true,
	})
}
