package dynamo

import (
	"context"
	"fmt"
	"sort"

	"github.com/edgepoll/edgepoll/internal/awsjson"
	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state"
)

// DeadLetter is the dynamodb:TABLE dead letter (and the dead letter of
// --state dynamodb:TABLE, in the state table): one item per record, pk
// "deadletter#<connection>#<item id, 20 digits>", the record's JSON line in
// the attribute "record" (plus id and connection for readers).
type DeadLetter struct {
	table string
	c     *awsjson.Client
}

// OpenDeadLetter checks the table (string partition key pk). c nil: region,
// credentials and endpoint as for --state dynamodb:TABLE.
func OpenDeadLetter(ctx context.Context, table string, c *awsjson.Client) (*DeadLetter, error) {
	c, err := Connect(ctx, table, c)
	if err != nil {
		return nil, fmt.Errorf("dead letter: %v", err)
	}
	return &DeadLetter{table: table, c: c}, nil
}

func deadPrefix(conn string) string { return "deadletter#" + conn + "#" }

func deadPK(conn string, id int64) string { return fmt.Sprintf("%s%020d", deadPrefix(conn), id) }

// Append puts rec; an acknowledged PutItem is durable.
func (d *DeadLetter) Append(ctx context.Context, conn string, rec poll.DeadLetterRecord) error {
	if rec.Connection == "" {
		rec.Connection = conn
	}
	b, err := state.EncodeDeadLetter(rec)
	if err != nil {
		return fmt.Errorf("dead letter: %v", err)
	}
	err = d.c.Do(ctx, "PutItem", struct {
		TableName string
		Item      Item
	}{d.table, Item{
		"pk":         Str(deadPK(conn, rec.ID)),
		"id":         Num(rec.ID),
		"connection": Str(conn),
		"record":     Str(string(b)),
	}}, nil)
	if err != nil {
		return fmt.Errorf("dead letter dynamodb %s: %v", d.table, err)
	}
	return nil
}

// Close implements poll.DeadLetter.
func (d *DeadLetter) Close() error { return nil }

// List scans the table for conn's records (consistent read) and returns
// them in item order.
func (d *DeadLetter) List(ctx context.Context, conn string) ([]poll.DeadLetterRecord, error) {
	var out []poll.DeadLetterRecord
	in := struct {
		TableName                 string
		ConsistentRead            bool
		FilterExpression          string
		ExpressionAttributeValues Item
		ExclusiveStartKey         Item `json:",omitempty"`
	}{d.table, true, "begins_with(pk, :p)", Item{":p": Str(deadPrefix(conn))}, nil}
	for {
		var page struct {
			Items            []Item
			LastEvaluatedKey Item
		}
		if err := d.c.Do(ctx, "Scan", in, &page); err != nil {
			return nil, fmt.Errorf("dead letter dynamodb %s: %v", d.table, err)
		}
		for _, item := range page.Items {
			s := item["record"].S
			if s == nil {
				continue
			}
			if rec, err := state.DecodeDeadLetter([]byte(*s)); err == nil {
				out = append(out, rec)
			}
		}
		if len(page.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Remove deletes conn's records of these ids.
func (d *DeadLetter) Remove(ctx context.Context, conn string, ids ...int64) error {
	for _, id := range ids {
		err := d.c.Do(ctx, "DeleteItem", struct {
			TableName string
			Key       Item
		}{d.table, Item{"pk": Str(deadPK(conn, id))}}, nil)
		if err != nil {
			return fmt.Errorf("dead letter dynamodb %s: %v", d.table, err)
		}
	}
	return nil
}
