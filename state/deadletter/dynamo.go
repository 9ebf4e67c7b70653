package deadletter

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/edgepoll/edgepoll/state/dynamo"
)

// Dynamo is the dynamodb:TABLE dead letter: one item per record, pk
// "deadletter#<connection>#<item id, 20 digits>", the record's JSON line in
// the attribute "record" (plus id and connection for readers).
type Dynamo struct {
	table string
	c     *dynamodb.Client
}

// OpenDynamo checks the table (string partition key pk). c nil: the SDK's
// default configuration, as for --state dynamodb:TABLE.
func OpenDynamo(ctx context.Context, table string, c *dynamodb.Client) (*Dynamo, error) {
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
	_, err = d.c.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(d.table),
		Item: map[string]types.AttributeValue{
			"pk":         &types.AttributeValueMemberS{Value: pk(conn, rec.ID)},
			"id":         &types.AttributeValueMemberN{Value: strconv.FormatInt(rec.ID, 10)},
			"connection": &types.AttributeValueMemberS{Value: conn},
			"record":     &types.AttributeValueMemberS{Value: string(b)},
		},
	})
	if err != nil {
		return fmt.Errorf("dead letter dynamodb %s: %s", d.table, dynamo.AWSError(err))
	}
	return nil
}

// Close implements poll.DeadLetter.
func (d *Dynamo) Close() error { return nil }

// List scans the table for conn's records (consistent read) and returns
// them in item order.
func (d *Dynamo) List(ctx context.Context, conn string) ([]Record, error) {
	var out []Record
	p := dynamodb.NewScanPaginator(d.c, &dynamodb.ScanInput{
		TableName:                 aws.String(d.table),
		ConsistentRead:            aws.Bool(true),
		FilterExpression:          aws.String("begins_with(pk, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": &types.AttributeValueMemberS{Value: prefix(conn)}},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("dead letter dynamodb %s: %s", d.table, dynamo.AWSError(err))
		}
		for _, item := range page.Items {
			s, ok := item["record"].(*types.AttributeValueMemberS)
			if !ok {
				continue
			}
			if rec, err := decode([]byte(s.Value)); err == nil {
				out = append(out, rec)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Remove deletes conn's records of these ids.
func (d *Dynamo) Remove(ctx context.Context, conn string, ids ...int64) error {
	for _, id := range ids {
		_, err := d.c.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName: aws.String(d.table),
			Key:       map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk(conn, id)}},
		})
		if err != nil {
			return fmt.Errorf("dead letter dynamodb %s: %s", d.table, dynamo.AWSError(err))
		}
	}
	return nil
}
