-- The sample database of `pgattest demo` and of the tests: a small shop that
-- exercises the object kinds a real dump carries. Run as a superuser, in the
-- new database, after the roles shop_owner and shop_reader exist.

SET ROLE shop_owner;

CREATE SCHEMA shop;
CREATE SCHEMA analytics;
COMMENT ON SCHEMA shop IS 'Orders, customers and products';

CREATE TYPE shop.order_status AS ENUM ('new', 'paid', 'shipped', 'cancelled');
CREATE DOMAIN shop.email AS text CHECK (VALUE ~ '^[^@\s]+@[^@\s]+$');
CREATE TYPE shop.money_range AS (low numeric(12,2), high numeric(12,2));

CREATE SEQUENCE shop.invoice_no START 1000;

CREATE TABLE shop.customers (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      shop.email NOT NULL UNIQUE,
    name       text NOT NULL,
    country    char(2) NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE shop.customers IS 'Everyone who ever ordered';
COMMENT ON COLUMN shop.customers.country IS 'ISO 3166-1 alpha-2';

CREATE TABLE shop.products (
    id     serial PRIMARY KEY,
    sku    text NOT NULL UNIQUE,
    title  text NOT NULL,
    price  numeric(10,2) NOT NULL CHECK (price > 0),
    attrs  jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX products_attrs_idx ON shop.products USING gin (attrs);

CREATE TABLE shop.orders (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES shop.customers(id),
    status      shop.order_status NOT NULL DEFAULT 'new',
    invoice     bigint UNIQUE,
    placed_at   timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer_idx ON shop.orders (customer_id);

CREATE TABLE shop.order_items (
    order_id   bigint NOT NULL REFERENCES shop.orders(id) ON DELETE CASCADE,
    product_id int NOT NULL REFERENCES shop.products(id),
    quantity   int NOT NULL CHECK (quantity > 0),
    unit_price numeric(10,2) NOT NULL,
    PRIMARY KEY (order_id, product_id)
);

-- A partitioned table: page views by month.
CREATE TABLE analytics.page_views (
    viewed_at timestamptz NOT NULL,
    path      text NOT NULL,
    customer  bigint,
    ms        int
) PARTITION BY RANGE (viewed_at);
CREATE TABLE analytics.page_views_2026_09 PARTITION OF analytics.page_views
    FOR VALUES FROM ('2026-09-01') TO ('2026-10-01');
CREATE TABLE analytics.page_views_2026_10 PARTITION OF analytics.page_views
    FOR VALUES FROM ('2026-10-01') TO ('2026-11-01');
CREATE TABLE analytics.page_views_2026_11 PARTITION OF analytics.page_views
    FOR VALUES FROM ('2026-11-01') TO ('2026-12-01');
CREATE INDEX page_views_path_idx ON analytics.page_views (path);

CREATE TABLE shop.audit_log (
    id        bigserial PRIMARY KEY,
    order_id  bigint NOT NULL,
    old_state shop.order_status,
    new_state shop.order_status,
    at        timestamptz NOT NULL DEFAULT now()
);

-- Functions, and a trigger that keeps updated_at and the audit log.
CREATE FUNCTION shop.order_total(order_id bigint) RETURNS numeric
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce(sum(quantity * unit_price), 0) FROM shop.order_items WHERE order_items.order_id = $1 $$;

CREATE FUNCTION shop.touch_order() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.updated_at := now();
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO shop.audit_log (order_id, old_state, new_state) VALUES (NEW.id, OLD.status, NEW.status);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER orders_touch BEFORE UPDATE ON shop.orders
    FOR EACH ROW EXECUTE FUNCTION shop.touch_order();

CREATE VIEW shop.customer_totals AS
    SELECT c.id, c.name, count(o.id) AS orders, coalesce(sum(shop.order_total(o.id)), 0) AS spent
    FROM shop.customers c LEFT JOIN shop.orders o ON o.customer_id = c.id
    GROUP BY c.id, c.name;

-- Data: deterministic, so every load has the same counts.
SELECT setseed(0.42);

INSERT INTO shop.customers (email, name, country, created_at)
SELECT format('customer%s@example.com', g), format('Customer %s', g),
       (ARRAY['DE','FR','US','JP','BR','NL'])[1 + g % 6],
       timestamptz '2024-01-01' + g * interval '1 hour'
FROM generate_series(1, 5000) g;

INSERT INTO shop.products (sku, title, price, attrs)
SELECT format('SKU-%s', lpad(g::text, 5, '0')), format('Product %s', g),
       round((1 + random() * 199)::numeric, 2),
       jsonb_build_object('color', (ARRAY['red','green','blue'])[1 + g % 3], 'weight_g', g * 7 % 2000)
FROM generate_series(1, 500) g;

INSERT INTO shop.orders (customer_id, status, invoice, placed_at)
SELECT 1 + (g * 7919) % 5000,
       (ARRAY['new','paid','shipped','cancelled']::shop.order_status[])[1 + g % 4],
       CASE WHEN g % 4 IN (1, 2) THEN nextval('shop.invoice_no') END,
       timestamptz '2025-01-01' + g * interval '17 minutes'
FROM generate_series(1, 30000) g;

INSERT INTO shop.order_items (order_id, product_id, quantity, unit_price)
SELECT o.id, 1 + (o.id * 7 + k * 167) % 500, 1 + (o.id + k) % 5, round((1 + random() * 199)::numeric, 2)
FROM shop.orders o, generate_series(1, 3) k;

INSERT INTO analytics.page_views (viewed_at, path, customer, ms)
SELECT timestamptz '2026-09-01' + ((g * 2) % 129600) * interval '1 minute',
       (ARRAY['/','/cart','/checkout','/product','/search'])[1 + g % 5],
       CASE WHEN g % 3 > 0 THEN 1 + g % 5000 END,
       (random() * 900)::int
FROM generate_series(1, 60000) g;

UPDATE shop.orders SET status = 'shipped' WHERE id % 1000 = 1 AND status = 'paid';

CREATE MATERIALIZED VIEW analytics.daily_sales AS
    SELECT date_trunc('day', o.placed_at) AS day, count(*) AS orders, sum(i.quantity * i.unit_price) AS revenue
    FROM shop.orders o JOIN shop.order_items i ON i.order_id = o.id
    WHERE o.status <> 'cancelled'
    GROUP BY 1;
CREATE UNIQUE INDEX daily_sales_day_idx ON analytics.daily_sales (day);

-- A large object: the shop's terms of service.
SELECT lo_from_bytea(0, convert_to(repeat('Terms of service. ', 200), 'UTF8'));

-- Privileges for the read-only reporting role.
GRANT USAGE ON SCHEMA shop, analytics TO shop_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA shop TO shop_reader;
GRANT SELECT ON analytics.daily_sales TO shop_reader;
GRANT EXECUTE ON FUNCTION shop.order_total(bigint) TO shop_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA analytics GRANT SELECT ON TABLES TO shop_reader;
REVOKE ALL ON shop.audit_log FROM shop_reader;

RESET ROLE;
ANALYZE;
