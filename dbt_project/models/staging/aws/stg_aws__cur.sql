{# AWS CUR 2.0 and legacy CUR line items in FOCUS 1.2 shape. EffectiveCost follows AWS's
   amortisation rules (the mapping table is in _aws__models.yml). A commitment's recurring fee
   (SavingsPlanRecurringFee, RIFee) is two FOCUS rows: the Purchase (billed, EffectiveCost 0, as
   it pays for covered usage that carries its own effective cost) and the unused commitment as a
   Usage row with CommitmentDiscountStatus 'Unused' (EffectiveCost = what went unused). #}
{% set commitment_fees = "('SavingsPlanRecurringFee', 'RIFee')" %}
{% set effective_cost %}
    case
        when part = 'unused' and line_item_line_item_type = 'SavingsPlanRecurringFee'
            then savings_plan_total_commitment_to_date - savings_plan_used_commitment
        when part = 'unused'
            then coalesce(reservation_unused_amortized_upfront_fee_for_billing_period, 0)
                + coalesce(reservation_unused_recurring_fee, 0)
        when line_item_line_item_type in {{ commitment_fees }} then 0
        when line_item_line_item_type = 'SavingsPlanCoveredUsage' then savings_plan_savings_plan_effective_cost
        when line_item_line_item_type in ('SavingsPlanNegation', 'SavingsPlanUpfrontFee') then 0
        when line_item_line_item_type = 'DiscountedUsage' then reservation_effective_cost
        when line_item_line_item_type = 'Fee' and coalesce(reservation_reservation_a_r_n, '') <> '' then 0
        else line_item_unblended_cost
    end
{% endset %}

{# The source twice, not a CTE read twice: DuckDB would materialise every column of every line
   item first (at 100 M lines, tens of GB spilled) where each branch reads only what it uses. #}
with parts as (
    select *, 'charge' as part from {{ source('raw', 'aws_cur') }}
    union all
    select *, 'unused' as part from {{ source('raw', 'aws_cur') }}
    where line_item_line_item_type in {{ commitment_fees }}
)

select
    _source_file || '#' || cast(_row_number as varchar) || case when part = 'unused' then '#unused' else '' end
        as charge_id,
    'AWS' as provider_name,
    case when bill_billing_entity = 'AWS Marketplace' then bill_invoicing_entity else 'AWS' end
        as invoice_issuer_name,
    bill_payer_account_id as billing_account_id,
    bill_payer_account_name as billing_account_name,
    line_item_usage_account_id as sub_account_id,
    line_item_usage_account_name as sub_account_name,
    nullif(bill_invoice_id, '') as invoice_id,
    _billing_period as billing_period,
    cast(bill_billing_period_start_date as timestamp) as billing_period_start,
    cast(bill_billing_period_end_date as timestamp) as billing_period_end,
    cast(line_item_usage_start_date as timestamp) as charge_period_start,
    cast(line_item_usage_end_date as timestamp) as charge_period_end,
    line_item_currency_code as billing_currency,
    case
        when part = 'unused' then 'Usage'
        when line_item_line_item_type = 'Tax' then 'Tax'
        when line_item_line_item_type in ('Credit', 'Refund', 'BundledDiscount', 'EdpDiscount',
                                          'PrivateRateDiscount', 'Discount', 'DistributorDiscount')
            then 'Credit'
        when line_item_line_item_type in ('Fee', 'RIFee', 'SavingsPlanUpfrontFee', 'SavingsPlanRecurringFee')
            then 'Purchase'
        else 'Usage'
    end as charge_category,
    case when line_item_line_item_type = 'Refund' and bill_bill_type = 'Refund' then 'Correction' end as charge_class,
    case
        when part = 'unused' then 'Unused commitment: ' || line_item_line_item_description
        else line_item_line_item_description
    end as charge_description,
    case
        when part = 'unused' then 'Usage-Based'
        when bill_bill_type = 'Purchase' or line_item_line_item_type = 'Fee' then 'One-Time'
        when line_item_line_item_type in {{ commitment_fees }} then 'Recurring'
        else 'Usage-Based'
    end as charge_frequency,
    {{ money("case when part = 'unused' then 0 else coalesce(line_item_net_unblended_cost, line_item_unblended_cost) end") }}
        as billed_cost,
    {{ money(effective_cost) }} as effective_cost,
    {{ money("case when part = 'unused' then 0 else coalesce(pricing_public_on_demand_cost, line_item_unblended_cost) end") }}
        as list_cost,
    {{ money("case when part = 'unused' then 0 else line_item_unblended_cost end") }} as contracted_cost,
    {{ quantity('pricing_public_on_demand_rate') }} as list_unit_price,
    {{ quantity('line_item_unblended_rate') }} as contracted_unit_price,
    {{ quantity('line_item_usage_amount') }} as pricing_quantity,
    {{ focus_unit('pricing_unit') }} as pricing_unit,
    case
        when pricing_term = 'Spot' or line_item_usage_type like '%SpotUsage%' then 'Dynamic'
        when line_item_line_item_type in ('DiscountedUsage', 'SavingsPlanCoveredUsage') then 'Committed'
        when line_item_line_item_type = 'Usage' then 'Standard'
    end as pricing_category,
    case
        when part = 'charge' and line_item_line_item_type in ('Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage')
            then {{ quantity('line_item_usage_amount') }}
    end as consumed_quantity,
    {{ focus_unit('pricing_unit') }} as consumed_unit,
    coalesce(nullif(savings_plan_savings_plan_a_r_n, ''), nullif(reservation_reservation_a_r_n, ''))
        as commitment_discount_id,
    case
        when coalesce(savings_plan_savings_plan_a_r_n, '') <> '' then 'Spend'
        when coalesce(reservation_reservation_a_r_n, '') <> '' then 'Usage'
    end as commitment_discount_category,
    case
        when coalesce(savings_plan_savings_plan_a_r_n, '') <> '' then 'Savings Plan'
        when coalesce(reservation_reservation_a_r_n, '') <> '' then 'Reserved Instance'
    end as commitment_discount_type,
    case
        when part = 'unused' then 'Unused'
        when line_item_line_item_type in ('DiscountedUsage', 'SavingsPlanCoveredUsage') then 'Used'
    end as commitment_discount_status,
    nullif(line_item_resource_id, '') as resource_id,
    nullif(line_item_resource_id, '') as resource_name,
    cast(null as varchar) as resource_type,
    line_item_product_code as service_name,
    case
        when line_item_product_code in ('AmazonEC2', 'ComputeSavingsPlans', 'AWSLambda', 'AmazonECS', 'AmazonEKS')
            then 'Compute'
        when line_item_product_code in ('AmazonS3', 'AmazonEFS', 'AmazonFSx', 'AWSBackup', 'AmazonGlacier')
            then 'Storage'
        when line_item_product_code in ('AWSDataTransfer', 'AmazonVPC', 'AmazonCloudFront', 'AmazonRoute53',
                                        'AWSELB', 'AWSDirectConnect')
            then 'Networking'
        when line_item_product_code in ('AmazonSageMaker', 'AmazonBedrock') then 'AI and Machine Learning'
        when line_item_product_code in ('AmazonRDS', 'AmazonDynamoDB', 'AmazonElastiCache') then 'Databases'
        when line_item_product_code in ('AmazonCloudWatch', 'AWSCloudTrail', 'AWSConfig') then 'Management and Governance'
        else 'Other'
    end as service_category,
    case
        when line_item_product_code in ('AmazonEC2', 'ComputeSavingsPlans') then 'Virtual Machines'
        when line_item_product_code in ('AmazonS3', 'AmazonGlacier') then 'Object Storage'
        when line_item_product_code in ('AmazonEFS', 'AmazonFSx') then 'File Storage'
        when line_item_product_code = 'AWSDataTransfer' then 'Network Connectivity'
        when line_item_product_code = 'AmazonCloudFront' then 'Content Delivery'
        when line_item_product_code = 'AmazonSageMaker' then 'Machine Learning'
        when line_item_product_code = 'AmazonBedrock' then 'Generative AI'
    end as service_subcategory,
    product_sku as sku_id,
    coalesce(pricing_rate_code, product_sku) as sku_price_id,
    product_region_code as region_id,
    product_location as region_name,
    nullif(line_item_availability_zone, '') as availability_zone,
    {{ map_to_json('resource_tags') }} as tags,
    coalesce(
        nullif(product_instance_type, ''),
        case
            when line_item_usage_type like '%BoxUsage:%' or line_item_usage_type like '%SpotUsage:%'
                or line_item_usage_type like '%DedicatedUsage:%'
                then split_part(line_item_usage_type, ':', 2)
        end
    ) as x_instance_type,
    'aws-cur' as x_source_format,
    _ingested_at as x_ingested_at
from parts
