package kafka

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/testenv"
	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks/sinktest"
)

// Brokers that refuse connections, or answer but do not speak Kafka (an
// HTTP server's port), fail the batch with the cause as the reason, with
// the default 30 s record timeout: a test-level context of 20 s ends the
// run first if the sink waits for that timeout (the report then says
// "canceled").
func TestRefusedOrNotKafkaBrokersFailFast(t *testing.T) {
	refused := testenv.RefusedAddr(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(web.Close)
	for _, tc := range []struct{ name, addr, reason string }{
		{"refused", refused, "connection_refused"},
		{"http server", web.Listener.Addr().String(), "not_kafka"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSink(t, Config{Brokers: []string{tc.addr}, Topic: topic})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var mu sync.Mutex
			errs := map[int]error{}
			start := time.Now()
			s.Send(ctx, sinktest.Events(3), func(i int, err error) bool {
				mu.Lock()
				defer mu.Unlock()
				errs[i] = err
				return true
			})
			t.Logf("took %v", time.Since(start))
			require.NotEmpty(t, errs)
			for i, err := range errs {
				require.Error(t, err, "item %d", i)
				assert.False(t, poll.IsPermanent(err))
				assert.Equal(t, tc.reason, poll.ReasonOf(err), "%v", err)
			}
		})
	}
}
