-- Where a tenant's personal codes are delivered (POST JSON), if anywhere.
ALTER TABLE tenants ADD COLUMN invite_webhook TEXT;
