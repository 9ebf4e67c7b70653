package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Check implements poll.Checker: the brokers answer a metadata request (so
// connection, TLS and SASL work) and the topic exists. Nothing is produced,
// and the request never creates the topic.
func (s *Sink) Check(ctx context.Context) (string, error) {
	if err := s.probe(ctx); err != nil {
		return "", fmt.Errorf("kafka metadata: %v", err)
	}
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(s.cfg.Topic)
	req.Topics = append(req.Topics, t)
	req.AllowAutoTopicCreation = false
	resp, err := req.RequestWith(ctx, s.cl)
	if err != nil {
		if cause := s.conns.get(); cause != nil {
			err = cause
		}
		return "", fmt.Errorf("kafka metadata: %v", err)
	}
	for _, rt := range resp.Topics {
		if rt.Topic == nil || *rt.Topic != s.cfg.Topic {
			continue
		}
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
			return "", fmt.Errorf("kafka topic %q: %v", s.cfg.Topic, err)
		}
		return fmt.Sprintf("topic %q exists (%d partitions, %d brokers)", s.cfg.Topic, len(rt.Partitions), len(resp.Brokers)), nil
	}
	return "", fmt.Errorf("kafka topic %q: not in the metadata", s.cfg.Topic)
}
