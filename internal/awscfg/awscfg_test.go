package awscfg

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/smithy-go/logging"
)

// The SDK's warnings go to edgepoll's log (slog.Default), in its format.
func TestSDKLogLinesGoToSlog(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, nil)))
	defer slog.SetDefault(old)
	sdkLogger.Logf(logging.Warn, "failed to close HTTP response body, %v", "checksum")
	sdkLogger.Logf(logging.Debug, "not shown at info")
	out := buf.String()
	if !strings.Contains(out, `"level":"WARN"`) || !strings.Contains(out, `"msg":"AWS SDK: failed to close HTTP response body, checksum"`) {
		t.Fatalf("SDK warning not logged as JSON through slog: %q", out)
	}
	if strings.Contains(out, "not shown") {
		t.Fatalf("SDK debug line logged at the default level: %q", out)
	}
}
