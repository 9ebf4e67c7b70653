package sinktest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// VerifySignature checks an X-ilert-Signature header the way
// docs/feeding.md tells a receiver to, written apart from the HTTP sink's
// signing code: the HMAC-SHA256 of "<t>.<body>" compared in constant time,
// t within 5 minutes of now. It returns t.
func VerifySignature(secret, header string, body []byte, now time.Time) (int64, error) {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return 0, fmt.Errorf("malformed signature header %q", header)
	}
	if d := now.Sub(time.Unix(t, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return t, fmt.Errorf("stale signature (%s)", d)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	if !hmac.Equal([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(sig)) {
		return t, errors.New("signature mismatch")
	}
	return t, nil
}
