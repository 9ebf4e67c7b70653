package deadletter

import (
	"context"
	"fmt"
	"sort"

	"github.com/edgepoll/edgepoll/internal/awsjson"
	"github.com/edgepoll/edgepoll/state/dynamo"
)

// Dynamo is the dynamodb:TABLE dead letter: one item per record, pk
// "deadletter#<connection>#<item id, 20 digits>", the record's JSON line in
// the attribute "record" (plus id and connection for readers).
type Dynamo struct {
	table string
	c     *awsjson.Client
}

// OpenDynamo checks the table (string partition key pk). c nil: region,
// credentials and endpoint as for --state dynamodb:TABLE.
func OpenDynamo(ctx context.Context, table string, c *awsjson.Client) (*Dynamo, error) {
	c, err := dynamo.Connect(ctx, table, c)
	if err != nil {
		return nil, fmt.Errorf("dead letter: %v", err)
	}
	return &Dynamo{table: table, c: c}, nil
}

func prefix(conn string) string { return "deadletter#" + conn + "#" }

func pk(conn string, id int64) string { return fmt.Sprintf("%s%020d", prefix(conn), id) }

// Append puts rec; an acknowledged PutItem is durable.
func (d *Dynamo) Append(ctx context.Context, conn string, rec Record) error {
	if rec.Connection == "" {
		rec.Connection = conn
	}
	b, err := encode(rec)
	if err != nil {
		return fmt.Errorf("dead letter: %v", err)
	}
	err = d.c.Do(ctx, "PutItem", struct {
		TableName string
		Item      dynamo.Item
	}{d.table, dynamo.Item{
		"pk":         dynamo.Str(pk(conn, rec.ID)),
		"id":         dynamo.Num(rec.ID),
		"connection": dynamo.Str(conn),
		"record":     dynamo.Str(string(b)),
	}}, nil)
	if err != nil {
		return fmt.Errorf("dead letter dynamodb %s: %v", d.table, err)
	}
	return nil
}

// Close implements poll.DeadLetter.
func (d *Dynamo) Close() error { return nil }

// List scans the table for conn's records (consistent read) and returns
// them in item order.
func (d *Dynamo) List(ctx context.Context, conn string) ([]Record, error) {
	var out []Record
	in := struct {
		TableName                 string
		ConsistentRead            bool
		FilterExpression          string
		ExpressionAttributeValues dynamo.Item
		ExclusiveStartKey         dynamo.Item `json:",omitempty"`
	}{d.table, true, "begins_with(pk, :p)", dynamo.Item{":p": dynamo.Str(prefix(conn))}, nil}
	for {
		var page struct {
			Items            []dynamo.Item
			LastEvaluatedKey dynamo.Item
		}
		if err := d.c.Do(ctx, "Scan", in, &page); err != nil {
			return nil, fmt.Errorf("dead letter dynamodb %s: %v", d.table, err)
		}
		for _, item := range page.Items {
			s := item["record"].S
			if s == nil {
				continue
			}
			if rec, err := decode([]byte(*s)); err == nil {
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
func (d *Dynamo) Remove(ctx context.Context, conn string, ids ...int64) error {
	for _, id := range ids {
		err := d.c.Do(ctx, "DeleteItem", struct {
			TableName string
			Key       dynamo.Item
		}{d.table, dynamo.Item{"pk": dynamo.Str(pk(conn, id))}}, nil)
		if err != nil {
			return fmt.Errorf("dead letter dynamodb %s: %v", d.table, err)
		}
	}
	return nil
}
