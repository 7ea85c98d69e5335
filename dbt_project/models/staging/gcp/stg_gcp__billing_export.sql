{# Google Cloud's detailed usage cost export in FOCUS shape.
   - Extracts overlap (each load re-reads a trailing window), so one row per content hash.
   - `cost` excludes credits. Discounts (committed use, sustained use, negotiated, ...) are part of
     what the row really costs: BilledCost = EffectiveCost = cost + those credits. Promotions and
     free tier are money given, not a price: each becomes its own Credit row.
   - The billing period is the invoice month (US Pacific); charge periods stay in UTC.
   - An a2/a3/g2 VM's GPU, core and RAM SKUs all carry the VM's machine type (system label
     compute.googleapis.com/machine_spec): all three are the VM's GPU-instance cost. #}
{% set promotion_types = "('PROMOTION', 'FREE_TIER')" %}

with export as (
    select *
    from {{ source('raw', 'gcp_billing_export') }}
    qualify row_number() over (partition by row_hash order by _source_file, line_number) = 1
),

credits as (
    select *
    from {{ source('raw', 'gcp_billing_credits') }}
    qualify row_number() over (partition by row_hash, credit_index order by _source_file) = 1
),

row_credits as (
    select
        row_hash,
        sum(case when credit_type not in {{ promotion_types }} then amount else 0 end) as discount_credits,
        max(case when credit_type like 'COMMITTED_USAGE_DISCOUNT%' then credit_id end) as commitment_id,
        max(case when credit_type = 'COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE' then 1 else 0 end) as spend_based
    from credits
    group by row_hash
),

usage_rows as (
    select
        'gcp#' || export.row_hash as charge_id,
        'Google Cloud' as provider_name,
        case when export.transaction_type = 'GOOGLE' then 'Google Cloud' else export.seller_name end
            as invoice_issuer_name,
        export.billing_account_id,
        cast(null as varchar) as billing_account_name,
        export.project_id as sub_account_id,
        export.project_name as sub_account_name,
        cast(null as varchar) as invoice_id,
        substr(export.invoice_month, 1, 4) || '-' || substr(export.invoice_month, 5, 2) as billing_period,
        export.billing_period_start,
        export.billing_period_end,
        export.usage_start_time as charge_period_start,
        export.usage_end_time as charge_period_end,
        export.currency as billing_currency,
        case
            when export.cost_type = 'tax' then 'Tax'
            when export.cost_type in ('adjustment', 'rounding_error') then 'Adjustment'
            when export.sku_description like 'Commitment%' then 'Purchase'
            else 'Usage'
        end as charge_category,
        case
            when export.cost_type = 'adjustment' and export.usage_start_time < export.billing_period_start
                then 'Correction'
        end as charge_class,
        export.sku_description as charge_description,
        case when export.sku_description like 'Commitment%' then 'Recurring' else 'Usage-Based' end
            as charge_frequency,
        {{ money('export.cost + coalesce(row_credits.discount_credits, 0)') }} as billed_cost,
        {{ money('export.cost + coalesce(row_credits.discount_credits, 0)') }} as effective_cost,
        {{ money('coalesce(export.cost_at_list, export.cost)') }} as list_cost,
        {{ money('export.cost') }} as contracted_cost,
        cast(null as decimal(38, 12)) as list_unit_price,
        {{ quantity('export.price_effective_price') }} as contracted_unit_price,
        {{ quantity('export.usage_amount_in_pricing_units') }} as pricing_quantity,
        export.usage_pricing_unit as pricing_unit,
        case
            when row_credits.commitment_id is not null then 'Committed'
            when export.sku_description like '%Spot%' or export.sku_description like '%Preemptible%' then 'Dynamic'
            when export.cost_type = 'regular' then 'Standard'
        end as pricing_category,
        case when export.cost_type = 'regular' then {{ quantity('export.usage_amount_in_pricing_units') }} end
            as consumed_quantity,
        export.usage_pricing_unit as consumed_unit,
        row_credits.commitment_id as commitment_discount_id,
        case
            when row_credits.commitment_id is null then null
            when row_credits.spend_based = 1 then 'Spend'
            else 'Usage'
        end as commitment_discount_category,
        case when row_credits.commitment_id is not null then 'Committed Use Discount' end
            as commitment_discount_type,
        case when row_credits.commitment_id is not null then 'Used' end as commitment_discount_status,
        coalesce(export.resource_global_name, export.resource_name) as resource_id,
        export.resource_name,
        cast(null as varchar) as resource_type,
        export.service_description as service_name,
        case export.service_description
            when 'Compute Engine' then 'Compute' when 'Kubernetes Engine' then 'Compute'
            when 'Cloud Storage' then 'Storage' when 'Networking' then 'Networking'
            when 'BigQuery' then 'Analytics' when 'Vertex AI' then 'AI and Machine Learning'
            when 'Cloud SQL' then 'Databases' when 'Cloud Logging' then 'Management and Governance'
            else 'Other'
        end as service_category,
        cast(null as varchar) as service_subcategory,
        export.sku_id,
        export.sku_id as sku_price_id,
        export.location_region as region_id,
        export.location_region as region_name,
        export.location_zone as availability_zone,
        {{ json_merge('export.project_labels', 'export.labels') }} as tags,
        {{ json_value('export.system_labels', "'compute.googleapis.com/machine_spec'") }} as x_instance_type,
        'gcp-billing-export' as x_source_format,
        export._ingested_at as x_ingested_at,
        export.row_hash
    from export
    left join row_credits on export.row_hash = row_credits.row_hash
),

promotion_rows as (
    select
        usage_rows.charge_id || '#credit' || cast(credits.credit_index as varchar) as charge_id,
        usage_rows.provider_name,
        usage_rows.invoice_issuer_name,
        usage_rows.billing_account_id,
        usage_rows.billing_account_name,
        usage_rows.sub_account_id,
        usage_rows.sub_account_name,
        usage_rows.invoice_id,
        usage_rows.billing_period,
        usage_rows.billing_period_start,
        usage_rows.billing_period_end,
        usage_rows.charge_period_start,
        usage_rows.charge_period_end,
        usage_rows.billing_currency,
        'Credit' as charge_category,
        cast(null as varchar) as charge_class,
        credits.credit_full_name as charge_description,
        'One-Time' as charge_frequency,
        {{ money('credits.amount') }} as billed_cost,
        {{ money('credits.amount') }} as effective_cost,
        {{ money('credits.amount') }} as list_cost,
        {{ money('credits.amount') }} as contracted_cost,
        cast(null as decimal(38, 12)) as list_unit_price,
        cast(null as decimal(38, 12)) as contracted_unit_price,
        cast(null as decimal(38, 12)) as pricing_quantity,
        cast(null as varchar) as pricing_unit,
        cast(null as varchar) as pricing_category,
        cast(null as decimal(38, 12)) as consumed_quantity,
        cast(null as varchar) as consumed_unit,
        cast(null as varchar) as commitment_discount_id,
        cast(null as varchar) as commitment_discount_category,
        cast(null as varchar) as commitment_discount_type,
        cast(null as varchar) as commitment_discount_status,
        usage_rows.resource_id,
        usage_rows.resource_name,
        usage_rows.resource_type,
        usage_rows.service_name,
        usage_rows.service_category,
        usage_rows.service_subcategory,
        usage_rows.sku_id,
        usage_rows.sku_price_id,
        usage_rows.region_id,
        usage_rows.region_name,
        usage_rows.availability_zone,
        usage_rows.tags,
        usage_rows.x_instance_type,
        usage_rows.x_source_format,
        usage_rows.x_ingested_at,
        usage_rows.row_hash
    from credits
    inner join usage_rows on credits.row_hash = usage_rows.row_hash
    where credits.credit_type in {{ promotion_types }}
)

select * from usage_rows
union all
select * from promotion_rows
