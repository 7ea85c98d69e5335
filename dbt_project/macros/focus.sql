{# The columns every billing staging model produces: FOCUS 1.2 Cost and Usage columns in
   snake_case (BilledCost -> billed_cost), plus gpuledger's own x_ columns. int_billing_charges
   unions the staging models on exactly this list, so a model that misses one fails the build. #}
{% macro focus_charge_columns() %}
    {{ return([
        'charge_id', 'provider_name', 'invoice_issuer_name', 'billing_account_id', 'billing_account_name',
        'sub_account_id', 'sub_account_name', 'invoice_id', 'billing_period', 'billing_period_start',
        'billing_period_end', 'charge_period_start', 'charge_period_end', 'billing_currency',
        'charge_category', 'charge_class', 'charge_description', 'charge_frequency',
        'billed_cost', 'effective_cost', 'list_cost', 'contracted_cost', 'list_unit_price',
        'contracted_unit_price', 'pricing_quantity', 'pricing_unit', 'pricing_category',
        'consumed_quantity', 'consumed_unit', 'commitment_discount_id', 'commitment_discount_category',
        'commitment_discount_type', 'commitment_discount_status', 'resource_id', 'resource_name',
        'resource_type', 'service_name', 'service_category', 'service_subcategory', 'sku_id', 'sku_price_id', 'region_id',
        'region_name', 'availability_zone', 'tags', 'x_instance_type', 'x_source_format'
    ]) }}
{% endmacro %}

{# A provider's unit spelled as FOCUS's UnitFormat wants it: AWS writes Hrs and GB-Mo. #}
{% macro focus_unit(unit_column) -%}
    case {{ unit_column }}
        when 'Hrs' then 'Hours'
        when 'hrs' then 'Hours'
        when 'GB-Mo' then 'GB-Months'
        when 'LCU-Hrs' then 'LCU-Hours'
        else {{ unit_column }}
    end
{%- endmacro %}
