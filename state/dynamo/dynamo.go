// Package dynamo is the DynamoDB state backend (--state dynamodb:TABLE).
//
// The table has a string partition key "pk". Per connection (the hash of the
// connector key) it holds two items:
//
//   - the lease, pk "lease#<conn>": owner, expires_at and renewed_at (epoch
//     ms), renew_ms (the holder's renewal interval), gen (the lease
//     generation, +1 at every acquisition) and ttl (epoch seconds, for
//     DynamoDB's TTL: a lease item of a connection unused for a week
//     disappears by itself);
//   - the cursor, pk "cursor#<conn>": cursor, refusals (the skip streak),
//     gen, updated_at, and the run statistics failures, last_success,
//     last_delivery (RFC 3339; written at the end of every cycle).
//
// Acquire is a conditional write on the lease item (free, expired, or already
// ours), then raises gen on the cursor item. Save is one conditional update
// of the cursor item: it moves only forward, and only while no newer lease
// generation has written there, so a run that lost its lease (expired and
// taken over) can never write again: its Save fails with poll.ErrLeaseLost.
// The lease is short (DefaultLeaseTTL, 15 s) and renewed every third of it
// while held, so a long cycle keeps it and a holder killed without
// releasing it (a Lambda invocation ended by its timeout or out of memory,
// SIGKILL, a lost node) blocks the connection for seconds, not minutes. A
// holder that missed two renewals in a row is reported as stalled
// (poll.LeaseInfo.Stalled) until the lease expires. Single-item conditions are used throughout (no transactions), so the
// backend works with DynamoDB, DynamoDB Local and dynalite alike.
// The calls go through the SDK's generated client (service/dynamodb) on the
// shared AWS configuration (internal/awscfg): its retryer with its retry
// quota retries throttling and transient errors, and a failed condition is
// the typed *types.ConditionalCheckFailedException. (The client also checks
// each answer's CRC32, but aws-sdk-go-v2 only logs a mismatch as a warning
// when the body is closed; the answer is used.)
package dynamo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/edgepoll/edgepoll/internal/awscfg"
	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state"
)

// Options configures the backend.
type Options struct {
	// Client to use; nil: NewClient (the shared AWS configuration).
	Client *dynamodb.Client
	// LeaseTTL: a lease not renewed for this long may be taken over.
	// Default DefaultLeaseTTL: several renewals long, short enough that a
	// killed run (a Lambda timeout or OOM, a killed pod) blocks the next
	// one only for seconds. Renewal keeps a long cycle's lease alive.
	LeaseTTL time.Duration
	// RenewEvery: how often a held lease is renewed. Default LeaseTTL/3.
	// Negative disables renewal (tests of a frozen run).
	RenewEvery time.Duration
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
}

// Lease timing.
const (
	// DefaultLeaseTTL: a lease not renewed for this long may be taken over.
	DefaultLeaseTTL = 15 * time.Second
	// stallRenewals: a holder that has not renewed for this many of its
	// renewal intervals is reported as stalled (most likely dead).
	stallRenewals = 2
)

// Store is a DynamoDB poll.Store.
type Store struct {
	table string
	c     *dynamodb.Client
	opt   Options
	log   *slog.Logger
}

// Backend registers --state dynamodb:TABLE.
var Backend = state.Backend{Scheme: "dynamodb", Form: "dynamodb:TABLE",
	Validate: func(table string) error {
		if !ValidTableName(table) {
			return fmt.Errorf("dynamodb: %q is not a valid table name (3-255 of A-Z a-z 0-9 _ - .)", table)
		}
		return nil
	},
	Open: func(ctx context.Context, table string, log *slog.Logger) (poll.Store, error) {
		return Open(ctx, table, Options{}, log)
	},
	// The dead letter lives in the state table, under keys of its own.
	DeadLetter: func(ctx context.Context, table string, _ *slog.Logger) (state.DeadLetter, error) {
		return OpenDeadLetter(ctx, table, nil)
	}}

// Open checks the table exists and has the string partition key pk.
func Open(ctx context.Context, table string, opt Options, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opt.LeaseTTL <= 0 {
		opt.LeaseTTL = DefaultLeaseTTL
	}
	if opt.RenewEvery == 0 {
		opt.RenewEvery = opt.LeaseTTL / 3
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	c, err := Connect(ctx, table, opt.Client)
	if err != nil {
		return nil, err
	}
	return &Store{table: table, c: c, opt: opt, log: log}, nil
}

// ValidTableName reports whether s is a valid DynamoDB table name.
func ValidTableName(s string) bool {
	if len(s) < 3 || len(s) > 255 {
		return false
	}
	for _, r := range s {
		if !tableNameRune(r) {
			return false
		}
	}
	return true
}

// tableNameRune reports whether r may appear in a DynamoDB table name.
func tableNameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.'
}

// DefaultAttempts is how many times a call is tried (throttling, 5xx,
// connection errors) unless AWS_MAX_ATTEMPTS / max_attempts says otherwise.
const DefaultAttempts = 5

// NewClient is the DynamoDB client on the shared AWS configuration
// (awscfg.Load): its region, credentials, HTTP client and endpoint
// (AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, the profile's endpoint_url);
// the SDK's standard retryer (adaptive with AWS_RETRY_MODE=adaptive) with
// AWS_MAX_ATTEMPTS / max_attempts attempts, else DefaultAttempts.
func NewClient(ctx context.Context) (*dynamodb.Client, error) {
	cfg, err := awscfg.Load(ctx)
	if err != nil {
		return nil, err
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if cfg.Retryer == nil && cfg.RetryMaxAttempts == 0 {
			o.RetryMaxAttempts = DefaultAttempts
		}
	}), nil
}

// Connect returns c, or when c is nil a client from NewClient, after
// checking that table exists and has the string partition key pk. The dead
// letter's DynamoDB backend uses it too.
func Connect(ctx context.Context, table string, c *dynamodb.Client) (*dynamodb.Client, error) {
	if c == nil {
		var err error
		if c, err = NewClient(ctx); err != nil {
			return nil, fmt.Errorf("dynamodb: %v", err)
		}
	}
	out, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		return nil, fmt.Errorf("dynamodb table %s: %v", table, err)
	}
	ok := false
	if out.Table != nil {
		for _, k := range out.Table.KeySchema {
			if aws.ToString(k.AttributeName) == "pk" && k.KeyType == types.KeyTypeHash {
				ok = true
			}
		}
	}
	if !ok {
		return nil, fmt.Errorf("dynamodb table %s: needs a string partition key named pk", table)
	}
	return c, nil
}

// Close implements poll.Store.
func (s *Store) Close() error { return nil }

// Item is a DynamoDB item (or key).
type Item = map[string]types.AttributeValue

// Str and Num are attribute values of the two types edgepoll uses.
func Str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
func Num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func key(pk string) Item { return Item{"pk": Str(pk)} }

func getNum(it Item, name string) int64 {
	if v, ok := it[name].(*types.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return 0
}

func getStr(it Item, name string) (string, bool) {
	v, ok := it[name].(*types.AttributeValueMemberS)
	if !ok {
		return "", false
	}
	return v.Value, true
}

// isConditionFailed: the write's condition did not hold.
func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// update is an UpdateItem request on the store's table.
type update struct {
	Key                       Item
	UpdateExpression          string
	ConditionExpression       string
	ExpressionAttributeNames  map[string]string
	ExpressionAttributeValues Item
}

func (s *Store) update(ctx context.Context, u update) error {
	_, err := s.c.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       u.Key,
		UpdateExpression:          aws.String(u.UpdateExpression),
		ConditionExpression:       aws.String(u.ConditionExpression),
		ExpressionAttributeNames:  u.ExpressionAttributeNames,
		ExpressionAttributeValues: u.ExpressionAttributeValues,
	})
	return err
}

func (s *Store) get(ctx context.Context, pk string) (Item, error) {
	out, err := s.c.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: key(pk), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("dynamodb %s: %v", s.table, err)
	}
	return out.Item, nil
}

// Acquire takes the lease on conn for owner.
func (s *Store) Acquire(ctx context.Context, conn, owner string) (poll.Lease, error) {
	lpk, cpk := "lease#"+conn, "cursor#"+conn
	litem, err := s.get(ctx, lpk)
	if err != nil {
		return nil, err
	}
	cur, err := s.get(ctx, cpk)
	if err != nil {
		return nil, err
	}
	gen := max(getNum(litem, "gen"), getNum(cur, "gen")) + 1
	now := s.opt.Now()
	exp := now.Add(s.opt.LeaseTTL)
	_, err = s.c.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table),
		Item: Item{
			"pk": Str(lpk), "owner": Str(owner), "gen": Num(gen),
			"expires_at":  Num(exp.UnixMilli()),
			"renewed_at":  Num(now.UnixMilli()),
			"renew_ms":    Num(s.opt.RenewEvery.Milliseconds()),
			"acquired_at": Str(now.UTC().Format(time.RFC3339Nano)),
			"ttl":         Num(exp.Add(7 * 24 * time.Hour).Unix()),
		},
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR attribute_not_exists(#o) OR expires_at < :now OR #o = :me"),
		ExpressionAttributeNames:  map[string]string{"#o": "owner"},
		ExpressionAttributeValues: Item{":now": Num(now.UnixMilli()), ":me": Str(owner)},
	})
	if isConditionFailed(err) {
		holder := "another run"
		if o, ok := getStr(litem, "owner"); ok {
			holder = o
		}
		return nil, fmt.Errorf("%w (held by %s)", poll.ErrLeaseHeld, holder)
	}
	if err != nil {
		return nil, fmt.Errorf("dynamodb %s: taking the lease: %v", s.table, err)
	}
	// Fence older generations out of the cursor item at once.
	err = s.update(ctx, update{
		Key:                       key(cpk),
		UpdateExpression:          "SET gen = :g",
		ConditionExpression:       "attribute_not_exists(gen) OR gen < :g",
		ExpressionAttributeValues: Item{":g": Num(gen)},
	})
	if err != nil && !isConditionFailed(err) {
		return nil, fmt.Errorf("dynamodb %s: fencing the cursor: %v", s.table, err)
	}
	if isConditionFailed(err) { // a newer generation raced past us
		return nil, fmt.Errorf("%w (taken over while acquiring)", poll.ErrLeaseHeld)
	}
	l := &lease{s: s, conn: conn, owner: owner, gen: gen, expires: exp, stop: make(chan struct{}), stopped: make(chan struct{})}
	if s.opt.RenewEvery > 0 {
		go l.renew()
	} else {
		close(l.stopped)
	}
	return l, nil
}

type lease struct {
	s       *Store
	conn    string
	owner   string
	gen     int64
	mu      sync.Mutex
	expires time.Time
	lost    bool
	done    bool
	stats   *poll.Stats // as read by Load or written by SaveStats
	stop    chan struct{}
	stopped chan struct{}
}

func (l *lease) renew() {
	defer close(l.stopped)
	t := time.NewTicker(l.s.opt.RenewEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.s.opt.RenewEvery)
		now := l.s.opt.Now()
		exp := now.Add(l.s.opt.LeaseTTL)
		err := l.s.update(ctx, update{
			Key:                       key("lease#" + l.conn),
			UpdateExpression:          "SET expires_at = :exp, renewed_at = :now, #t = :ttl",
			ConditionExpression:       "#o = :me AND gen = :g",
			ExpressionAttributeNames:  map[string]string{"#o": "owner", "#t": "ttl"},
			ExpressionAttributeValues: Item{":exp": Num(exp.UnixMilli()), ":now": Num(now.UnixMilli()), ":ttl": Num(exp.Add(7 * 24 * time.Hour).Unix()), ":me": Str(l.owner), ":g": Num(l.gen)},
		})
		cancel()
		l.mu.Lock()
		switch {
		case err == nil:
			l.expires = exp
		case isConditionFailed(err):
			l.lost = true
			l.s.log.Warn("lease lost to another run", "owner", l.owner)
		default:
			l.s.log.Warn("renewing the lease failed; will retry", "err", err)
		}
		lost := l.lost
		l.mu.Unlock()
		if lost {
			return
		}
	}
}

func (l *lease) Load(ctx context.Context) (poll.Position, bool, error) {
	item, err := l.s.get(ctx, "cursor#"+l.conn)
	if err != nil {
		return poll.Position{}, false, err
	}
	st := statsOf(item)
	l.mu.Lock()
	l.stats = &st // read with the cursor: LoadStats needs no second read
	l.mu.Unlock()
	if _, ok := item["cursor"]; !ok {
		return poll.Position{}, false, nil
	}
	return poll.Position{Cursor: getNum(item, "cursor"), Refusals: int(getNum(item, "refusals"))}, true, nil
}

func statsOf(item Item) poll.Stats {
	return poll.Stats{Failures: int(getNum(item, "failures")), LastSuccess: getTime(item, "last_success"), LastDelivery: getTime(item, "last_delivery")}
}

func getTime(item Item, name string) time.Time {
	if v, ok := getStr(item, name); ok {
		t, _ := time.Parse(time.RFC3339Nano, v)
		return t
	}
	return time.Time{}
}

func timeAttr(t time.Time) types.AttributeValue {
	if t.IsZero() {
		return Str("")
	}
	return Str(t.UTC().Format(time.RFC3339Nano))
}

// LoadStats returns the statistics read by Load, or reads them.
func (l *lease) LoadStats(ctx context.Context) (poll.Stats, error) {
	l.mu.Lock()
	st := l.stats
	l.mu.Unlock()
	if st != nil {
		return *st, nil
	}
	item, err := l.s.get(ctx, "cursor#"+l.conn)
	if err != nil {
		return poll.Stats{}, err
	}
	return statsOf(item), nil
}

// SaveStats writes the statistics onto the cursor item, fenced like Save.
func (l *lease) SaveStats(ctx context.Context, st poll.Stats) error {
	l.mu.Lock()
	lost, done := l.lost, l.done
	l.mu.Unlock()
	switch {
	case done:
		return errors.New("save after the lease was released")
	case lost:
		return fmt.Errorf("%w: statistics not saved", poll.ErrLeaseLost)
	}
	err := l.s.update(ctx, update{
		Key:                       key("cursor#" + l.conn),
		UpdateExpression:          "SET failures = :f, last_success = :s, last_delivery = :d",
		ConditionExpression:       "attribute_not_exists(gen) OR gen <= :g",
		ExpressionAttributeValues: Item{":f": Num(int64(st.Failures)), ":s": timeAttr(st.LastSuccess), ":d": timeAttr(st.LastDelivery), ":g": Num(l.gen)},
	})
	if isConditionFailed(err) {
		return fmt.Errorf("%w: a newer lease owns the connection; statistics not saved", poll.ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("dynamodb %s: saving the run statistics: %v", l.s.table, err)
	}
	l.mu.Lock()
	l.stats = &st
	l.mu.Unlock()
	return nil
}

// writable says whether this lease may still write the cursor: not after
// Release, and not once it was lost or expired (the fence).
func (l *lease) writable(op, lostMsg string) error {
	l.mu.Lock()
	lost, done, expired := l.lost, l.done, l.s.opt.Now().After(l.expires)
	l.mu.Unlock()
	switch {
	case done:
		return errors.New(op + " after the lease was released")
	case lost || expired:
		return fmt.Errorf("%w: %s", poll.ErrLeaseLost, lostMsg)
	}
	return nil
}

func (l *lease) Save(ctx context.Context, pos poll.Position) error {
	cursor := pos.Cursor
	if err := l.writable("save", fmt.Sprintf("cursor %d not saved", cursor)); err != nil {
		return err
	}
	err := l.s.update(ctx, update{
		Key:                       key("cursor#" + l.conn),
		UpdateExpression:          "SET #c = :c, refusals = :r, gen = :g, updated_at = :at",
		ConditionExpression:       "(attribute_not_exists(gen) OR gen <= :g) AND (attribute_not_exists(#c) OR #c < :c)",
		ExpressionAttributeNames:  map[string]string{"#c": "cursor"},
		ExpressionAttributeValues: Item{":c": Num(cursor), ":r": Num(int64(pos.Refusals)), ":g": Num(l.gen), ":at": Str(l.s.opt.Now().UTC().Format(time.RFC3339Nano))},
	})
	if err == nil {
		return nil
	}
	if !isConditionFailed(err) {
		return fmt.Errorf("dynamodb %s: saving the cursor: %v", l.s.table, err)
	}
	item, gerr := l.s.get(ctx, "cursor#"+l.conn)
	if gerr != nil {
		return gerr
	}
	if getNum(item, "gen") > l.gen {
		l.mu.Lock()
		l.lost = true
		l.mu.Unlock()
		return fmt.Errorf("%w: a newer lease owns the cursor; %d not saved", poll.ErrLeaseLost, cursor)
	}
	return nil // the stored cursor is already at or past this one
}

// SetCursor implements poll.CursorSetter: any value, backwards too, fenced
// like Save by the lease generation.
func (l *lease) SetCursor(ctx context.Context, cursor int64) error {
	return l.put(ctx, "SET #c = :c, refusals = :r, gen = :g, updated_at = :at", Item{
		":r": Num(0),
		":c": Num(cursor), ":at": Str(l.s.opt.Now().UTC().Format(time.RFC3339Nano)),
	})
}

// ResetCursor implements poll.CursorSetter: the cursor item keeps only its
// generation (the fence).
func (l *lease) ResetCursor(ctx context.Context) error {
	return l.put(ctx, "SET gen = :g REMOVE #c, refusals, updated_at", nil)
}

func (l *lease) put(ctx context.Context, expr string, values Item) error {
	if err := l.writable("set", "cursor not changed"); err != nil {
		return err
	}
	if values == nil {
		values = Item{}
	}
	values[":g"] = Num(l.gen)
	err := l.s.update(ctx, update{
		Key:                       key("cursor#" + l.conn),
		UpdateExpression:          expr,
		ConditionExpression:       "attribute_not_exists(gen) OR gen <= :g",
		ExpressionAttributeNames:  map[string]string{"#c": "cursor"},
		ExpressionAttributeValues: values,
	})
	if isConditionFailed(err) {
		return fmt.Errorf("%w: a newer lease owns the cursor; not changed", poll.ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("dynamodb %s: writing the cursor: %v", l.s.table, err)
	}
	return nil
}

// Inspect implements poll.Inspector with two consistent reads: the cursor
// item (cursor, refusal streak, run statistics) and the lease item (holder,
// expiry, last renewal; stalled when the holder missed two renewals).
func (s *Store) Inspect(ctx context.Context, conn string) (poll.StateInfo, error) {
	var info poll.StateInfo
	cur, err := s.get(ctx, "cursor#"+conn)
	if err != nil {
		return info, err
	}
	if _, ok := cur["cursor"]; ok {
		info.HasCursor, info.Cursor, info.Refusals = true, getNum(cur, "cursor"), int(getNum(cur, "refusals"))
		info.UpdatedAt = getTime(cur, "updated_at")
	}
	info.Stats = statsOf(cur)
	li, err := s.get(ctx, "lease#"+conn)
	if err != nil {
		return info, err
	}
	info.Lease = s.leaseInfo(li)
	return info, nil
}

// leaseInfo reads a lease item: held while not expired; stalled when held
// and its holder has not renewed it for stallRenewals of its intervals.
func (s *Store) leaseInfo(li Item) poll.LeaseInfo {
	o, ok := getStr(li, "owner")
	exp := time.UnixMilli(getNum(li, "expires_at"))
	now := s.opt.Now()
	if !ok || !exp.After(now) {
		return poll.LeaseInfo{}
	}
	info := poll.LeaseInfo{Held: true, Holder: o, ExpiresAt: exp.UTC()}
	if ms := getNum(li, "renewed_at"); ms > 0 {
		info.RenewedAt = time.UnixMilli(ms).UTC()
		every := time.Duration(getNum(li, "renew_ms")) * time.Millisecond
		info.Stalled = every > 0 && now.Sub(info.RenewedAt) > stallRenewals*every
	}
	return info
}

// Sync is a no-op: an acknowledged DynamoDB write is durable.
func (l *lease) Sync(context.Context) error { return nil }

// Release stops renewing and frees the lease if it is still ours.
func (l *lease) Release(ctx context.Context) error {
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		return nil
	}
	l.done = true
	l.mu.Unlock()
	close(l.stop)
	<-l.stopped
	err := l.s.update(ctx, update{
		Key:                       key("lease#" + l.conn),
		UpdateExpression:          "REMOVE #o, expires_at",
		ConditionExpression:       "#o = :me AND gen = :g",
		ExpressionAttributeNames:  map[string]string{"#o": "owner"},
		ExpressionAttributeValues: Item{":me": Str(l.owner), ":g": Num(l.gen)},
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("dynamodb %s: releasing the lease: %v", l.s.table, err)
	}
	return nil
}
