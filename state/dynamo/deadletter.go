package dynamo

import (
	"context"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state"
)

// DeadLetter is the dynamodb:TABLE dead letter (and the dead letter of
// --state dynamodb:TABLE, in the state table): one item per record, pk
// "deadletter#<connection>#<item id, 20 digits>", the record's JSON line in
// the attribute "record" (plus id and connection for readers).
type DeadLetter struct {
	table string
	c     *dynamodb.Client
}

// OpenDeadLetter checks the table (string partition key pk). c nil: region,
// credentials and endpoint as for --state dynamodb:TABLE.
func OpenDeadLetter(ctx context.Context, table string, c *dynamodb.Client) (*DeadLetter, error) {
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
	_, err = d.c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(d.table), Item: Item{
		"pk":         Str(deadPK(conn, rec.ID)),
		"id":         Num(rec.ID),
		"connection": Str(conn),
		"record":     Str(string(b)),
	}})
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
	in := &dynamodb.ScanInput{
		TableName:                 aws.String(d.table),
		ConsistentRead:            aws.Bool(true),
		FilterExpression:          aws.String("begins_with(pk, :p)"),
		ExpressionAttributeValues: Item{":p": Str(deadPrefix(conn))},
	}
	for {
		page, err := d.c.Scan(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("dead letter dynamodb %s: %v", d.table, err)
		}
		for _, item := range page.Items {
			s, ok := getStr(item, "record")
			if !ok {
				continue
			}
			if rec, err := state.DecodeDeadLetter([]byte(s)); err == nil {
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
		_, err := d.c.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(d.table), Key: key(deadPK(conn, id))})
		if err != nil {
			return fmt.Errorf("dead letter dynamodb %s: %v", d.table, err)
		}
	}
	return nil
}
