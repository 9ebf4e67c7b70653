package main

import (
	"context"
	"sync"
	"time"

	"github.com/edgepoll/edgepoll/metrics"
	"github.com/edgepoll/edgepoll/poll"
)

// stopGrace bounds a graceful stop: after SIGTERM/SIGINT the item in flight
// may take this long before it is aborted (the cursor is persisted either
// way). Kubernetes' default termination grace period is 30s.
const stopGrace = 25 * time.Second

// loop runs cycles as a daemon until ctx is cancelled (first SIGTERM or
// SIGINT), then finishes the item in flight, persists, releases and exits 0.
// The endpoints stay up until then: /health answers 503 from the signal on,
// /metrics keeps answering during the drain.
func (a *app) loop(ctx context.Context) int {
	m := metrics.New(a.cli.Mode, true)
	a.cycle.Observer = m
	health := metrics.NewHealth()

	hard, cancelHard := context.WithCancel(context.Background())
	defer cancelHard()
	go func() {
		<-ctx.Done()
		health.Stopping()
		t := time.NewTimer(stopGrace)
		defer t.Stop()
		select {
		case <-t.C:
			a.log.Warn("graceful stop took too long: aborting the delivery in flight", "grace", stopGrace)
			cancelHard()
		case <-hard.Done():
		}
	}()

	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()
	var serverDone <-chan struct{}
	if a.cli.Port != 0 {
		var err error
		serverDone, err = metrics.Serve(serveCtx, a.cli.ListenAddr, a.cli.Port, health.Handler(m), a.log)
		if err != nil {
			a.log.Error("cannot serve the health endpoints", "port", a.cli.Port, "err", err)
			return exitFailed
		}
	}
	firstSuccess := make(chan struct{})
	var firstOnce sync.Once
	if a.cli.Heartbeat != "" {
		hb := &poll.Heartbeat{
			Start:   firstSuccess,
			Healthy: health.Ready,
			Ping:    func(ctx context.Context) error { return a.client.Heartbeat(ctx, a.cli.Heartbeat) },
			OnPing: func(err error) {
				m.Heartbeat(err)
				if err != nil {
					a.log.Warn("heartbeat ping failed", "err", err)
				}
			},
		}
		go hb.Run(ctx)
	}

	attrs := []any{"mode", a.cli.Mode, "interval", a.cli.PollInterval.D()}
	if a.cycle.HA != nil {
		attrs = append(attrs, "cluster", a.cycle.HA.ClusterID, "instance", a.cycle.HA.InstanceID, "standby_interval", a.cli.StandbyInterval.D())
	}
	a.log.Info("edgepoll daemon started", attrs...)
	d := &poll.Daemon{
		Cycle:           a.cycle,
		Interval:        a.cli.PollInterval.D(),
		StandbyInterval: a.cli.StandbyInterval.D(),
		OnCycle: func(rep poll.CycleReport) {
			m.Cycle(rep)
			health.SetReady(rep.Ready, rep.Polling, rep.ReadyError)
			if rep.Ready {
				firstOnce.Do(func() { close(firstSuccess) })
			}
			s := rep.Summary
			attrs := []any{"polls", s.Polls, "polled", s.Polled, "delivered", s.Delivered, "skipped", s.Skipped, "cursor", s.Cursor}
			switch {
			case poll.DeliveryFailed(rep.Err):
				a.log.Warn("cycle failed; retrying after the poll interval", append(attrs, "err", rep.Err, "failures", rep.Failures, "retry_in", rep.Wait)...)
			case rep.Err != nil:
				a.log.Warn("cycle failed; backing off", append(attrs, "err", rep.Err, "failures", rep.Failures, "retry_in", rep.Wait)...)
			case s.Polled > 0:
				a.log.Info("cycle done", attrs...)
			default:
				a.log.Debug("cycle done", append(attrs, "lease_held", s.LeaseHeld, "role", s.Role)...)
			}
		},
	}
	_ = d.Run(ctx, hard)
	a.log.Info("stopped: cursor persisted, lease released")
	stopServing()
	if serverDone != nil {
		<-serverDone
	}
	return exitOK
}
