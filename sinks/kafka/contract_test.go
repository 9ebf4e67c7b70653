package kafka_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks"
	"github.com/edgepoll/edgepoll/sinks/contract"
	"github.com/edgepoll/edgepoll/sinks/kafka"
)

const contractTopic = "contract"

// consumer reads the topic from its start in the background.
type consumer struct {
	mu  sync.Mutex
	got []string
}

func (c *consumer) run(ctx context.Context, cl *kgo.Client) {
	for ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "X-ilert-Edge-Item-Id" {
					c.mu.Lock()
					c.got = append(c.got, string(h.Value))
					c.mu.Unlock()
				}
			}
		})
	}
}

// The target is franz-go's in-process kfake cluster: one partition (one
// order), records over 4 KiB refused (permanent), and Break makes the
// broker answer produce and metadata requests for the topic with
// TOPIC_AUTHORIZATION_FAILED (retryable: a fixed ACL must not have skipped
// items; Check sees it) until repaired; Hang holds every produce request
// unanswered.
func TestContract(t *testing.T) {
	contract.Run(t, contract.Harness{
		New: func(t *testing.T) contract.Target {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, contractTopic),
				kfake.BrokerConfigs(map[string]string{"message.max.bytes": "4096"}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(contractTopic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cons := &consumer{}
			done := make(chan struct{})
			go func() { defer close(done); cons.run(ctx, cl) }()
			t.Cleanup(func() { cancel(); <-done; cl.Close() })

			o := kafka.Registration.New().(*kafka.Options)
			o.Brokers, o.DeliveryTimeout = c.ListenAddrs()[0], 3*time.Second
			sh := sinks.Shared{Topic: contractTopic}
			s := contract.Open(t, o, sh, sinks.Env{})
			return contract.Target{
				Sink: s,
				Received: func() []string {
					cons.mu.Lock()
					defer cons.mu.Unlock()
					return append([]string(nil), cons.got...)
				},
				Hang: func() func() {
					release := make(chan struct{})
					var once sync.Once
					c.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
						c.SleepControl(func() { <-release })
						return nil, nil, false // then handled as usual
					})
					return func() { once.Do(func() { close(release) }) }
				},
				Break: func() func() {
					h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce, kmsg.Metadata}, Topic: contractTopic,
						Err: kerr.TopicAuthorizationFailed, Count: -1})
					return h.Remove
				},
			}
		},
		Refused: func(ev poll.Event) poll.Event {
			noise := make([]byte, 12000) // incompressible: the limit applies to the compressed batch
			_, _ = rand.Read(noise)
			return poll.NewEvent(ev.ID, []byte(`{"id":"alert-x","blob":"`+base64.StdEncoding.EncodeToString(noise)+`"}`))
		},
		Pipelined:      true,
		CheckSeesBreak: true,
	})
}
